export type Env = "development" | "staging" | "production";

const API_BASE_URLS: Record<Env, string> = {
  development: "http://localhost:8123",
  staging: "https://staging-api.shoplane.io/v2",
  production: "https://api.shoplane.io/v2",
};

export const ENV: Env = (import.meta.env.MODE as Env) ?? "development";
export const API_BASE_URL = API_BASE_URLS[ENV];
export const REQUEST_TIMEOUT_MS = 8000;
export const FREE_SHIPPING_THRESHOLD = 75;
