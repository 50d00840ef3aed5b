/** The agent's HTTP port, from the CLI: every failure names the URL, and what to check. */
export async function agentHttp(url: string, method: 'GET' | 'POST' | 'DELETE', token: string | undefined): Promise<unknown> {
  const headers = method !== 'GET' && token ? { authorization: `Bearer ${token}` } : undefined;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? 'no answer within 10 s' : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new Error(`${method} ${url}: ${why} (is the agent running there? --url or NANOGRID_URL)`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: shown as text
  }
  if (!res.ok) {
    const hint = res.status === 401 ? ' (NANOGRID_ADMIN_TOKEN is not the agent\'s)' : res.status === 403 ? ' (set NANOGRID_ADMIN_TOKEN: without one the agent takes this from its own machine only)' : '';
    throw new Error(`${method} ${url}: HTTP ${res.status} ${typeof body === 'string' ? body.slice(0, 200) : JSON.stringify(body)}${hint}`);
  }
  return body;
}
