import { API_BASE_URL, REQUEST_TIMEOUT_MS } from "@/config";

const MAX_RETRIES = 3;
const RETRYABLE_STATUS = [429, 502, 503, 504];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** GET/POST JSON against the API. Retries rate-limited and gateway errors with exponential backoff. */
export async function apiFetch<T>(path: string, init: RequestInit = {}): Promise<T> {
  let attempt = 0;
  for (;;) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      const res = await fetch(`${API_BASE_URL}${path}`, { ...init, signal: controller.signal });
      if (res.ok) return (await res.json()) as T;
      if (!RETRYABLE_STATUS.includes(res.status) || attempt >= MAX_RETRIES) {
        throw new Error(`API ${res.status} for ${path}`);
      }
    } finally {
      clearTimeout(timer);
    }
    attempt += 1;
    await sleep(250 * 2 ** attempt);
  }
}
