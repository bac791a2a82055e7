/**
 * Registered pipelines, re-exported for the server's modules. The registry lives in
 * src/registry/ (below ui, which starts runs by name, and below serve, which imports ui).
 */
export * from "../registry/pipelines.js";
