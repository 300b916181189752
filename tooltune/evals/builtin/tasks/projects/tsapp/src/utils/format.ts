const LOCALE = "en-US";

export function formatCurrency(amount: number, currency: "USD" | "EUR" = "USD"): string {
  return new Intl.NumberFormat(LOCALE, { style: "currency", currency }).format(amount);
}

export function formatDate(iso: string): string {
  return new Date(iso).toLocaleDateString(LOCALE, { year: "numeric", month: "short", day: "numeric" });
}
