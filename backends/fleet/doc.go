// Package fleet owns the fleet file: its schema, its parser and validator, the
// embedded default fleet, and the construction of the backends it names.
//
// A fleet file has these top-level sections:
//
//   - models: each served model once — its kind (llm, embedding, tensor), its
//     default priority, SLO targets per priority, hard timeout and shape
//     (context length, embedding dimension, number of classes), batching
//     and response-cache settings;
//   - backends: a list — name, hardware profile (from backends/catalog),
//     transport (emulated, or an OpenAI-compatible or KServe upstream URL),
//     models and their upstream names, API key variable, optional price
//     override, site, network round trip, replicas, metrics URL, device
//     UUID and health-check overrides;
//   - router: the placement policy and its parameters (router.Config);
//   - health_check, retry, hedging: active health checks, the retry budget
//     and hedging (see HealthCheck, Retry, Hedging);
//   - telemetry: how often upstream metrics endpoints are scraped.
//
// Parse decodes strictly (an unknown field is an error) and Validate names the
// offending field in every error, so a bad file fails at start with a message
// that says where. Build turns a validated File into a Fleet: the models by
// name and one backends.Backend per entry, in file order, which is the order
// the router indexes them by.
package fleet
