// Package batcher will hold accelgate's dynamic, deadline-aware batcher: one
// queue per backend that merges batchable requests (KServe v2 tensors,
// embeddings, completions prompts) into batches as large as their SLOs allow
// and acts as the admission queue for LLM streams.
//
// It is not built yet (see the batcher issue). Until it is, the gateway runs
// each request as its own batch: the emulator executes a request's rows
// (embedding inputs, images) as one batch, and LLM requests join the
// emulator's continuous batch directly.
package batcher
