// Package catalog owns accelgate's hardware profiles: what each accelerator
// endpoint (a whole GPU, an NVIDIA MIG slice, a TPU chip, an Inferentia2 chip
// group, a Jetson edge node) costs per hour and how fast it runs each workload
// class. It embeds profiles.yaml into the binary, decodes it strictly and
// checks it, and hands out the profiles by name.
//
// # File format
//
// A catalog file is YAML with one top-level key, profiles, a list of
// backends.Profile in their yaml field names:
//
//	profiles:
//	  - name: l4                      # unique; fleet files refer to it
//	    kind: gpu                     # gpu | mig | tpu | asic | edge
//	    description: ...
//	    price_per_hour_usd: 0.8048
//	    price_source: ...             # where the price came from, with its date
//	    memory_gb: 24
//	    precision: ...
//	    llm:        {precision, prefill_base_ms, prefill_ms_per_1k_tokens,
//	                 decode_base_ms, decode_per_seq_ms, max_concurrency,
//	                 estimated, source}
//	    vision:     {base_ms, per_item_ms, per_1k_tokens_ms, max_batch,
//	                 executors, estimated, source}
//	    embedding:  {same fields as vision}
//
// A missing llm, vision or embedding block means the hardware cannot serve
// that class (for example an 8B LLM on a 10 GB MIG slice). The latency models
// are the ones documented on backends.LLMModel and backends.BatchModel: LLM
// numbers are for an 8B-class model (Llama-3.1-8B-Instruct), vision for
// ResNet-50 and embeddings for a BERT-base-class encoder (bge-base-en-v1.5).
// Every model block names the source of its numbers and sets estimated: true
// where any number is a model rather than a measurement; the embedded file's
// comments give each derivation, and README.md in this directory tabulates the
// profiles and their sources.
//
// Parse rejects unknown fields, a bad kind, a missing source, a missing
// price_source and duplicate names, with errors that name the profile and the
// field.
//
// # How profiles reach the router and the emulator
//
// A fleet (backends/fleet) names a profile for each backend; the fleet loader
// resolves that name with Default().Get, or against a catalog an operator
// supplies and loads with Parse, and stores the *backends.Profile in the
// backend's backends.Descriptor (whose PricePerHour defaults to the
// profile's). The emulator (backends/emulator) times emulated work with the
// profile's latency models, and the router predicts each candidate's latency
// and cost from the same models and price. Profiles are shared by every
// backend that uses them and must not be modified.
package catalog
