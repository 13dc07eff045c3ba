/**
 * `$(VAR)` references, as Kubernetes expands them in a container's `command`, `args` (from its
 * whole env, pod-worker.ts) and `env[].value` (from the entries before it, pod-manifests.ts).
 */

/**
 * Kubernetes' expansion (its third_party/forked/golang/expansion): a `$(NAME)` becomes the value
 * of NAME in `env` when NAME is defined there and stays as written when not; `$$` is an escaped
 * `$` (so `$$(NAME)` becomes the literal `$(NAME)`); any other `$`, and a `$(` that is never
 * closed, stay as they are.
 */
export function expandEnvRefs(text: string, env: Readonly<Record<string, string>>): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0 || dollar === text.length - 1) break;
    out += text.slice(i, dollar);
    const next = text[dollar + 1];
    const close = next === '(' ? text.indexOf(')', dollar + 2) : -1;
    if (next === '$') {
      out += '$';
      i = dollar + 2;
    } else if (close >= 0) {
      const name = text.slice(dollar + 2, close);
      const value = Object.hasOwn(env, name) ? env[name] : undefined;
      out += value ?? `$(${name})`;
      i = close + 1;
    } else {
      out += `$${next ?? ''}`;
      i = dollar + 2;
    }
  }
  return out + text.slice(i);
}
