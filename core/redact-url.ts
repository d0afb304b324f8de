// Hides the credentials a connection URL may carry before it reaches a log line, an error message
// or the admin API. The proxy's store URL and the backend's REDIS_URL both go through it.

/**
 * Query parameters that may carry a credential. ioredis turns every query parameter of its URL into a
 * client option (`?password=`, `?username=`, `?sentinelPassword=` …), so any name that reads like one
 * is hidden.
 */
const SECRET_PARAM = /pass|secret|token|auth|key|cred|user/i;

/**
 * Hides every credential ioredis reads from a URL: the password of the userinfo ('redis://user:secret@h'
 * → 'redis://user:***@h', 'redis://:secret@h' → 'redis://:***@h'), a userinfo without a colon
 * ('redis://secret@h', which some clients read as a password), and credential query parameters
 * ('?password=secret' → '?password=***').
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not parseable, so no structure to trust: blank the userinfo and every query value.
    return url.replace(/(\/\/)[^/?#]*@/, '$1***@').replace(/([?&][^=&#]*=)[^&#]*/g, '$1***');
  }
  let changed = false;
  if (u.password) {
    u.password = '***';
    changed = true;
  } else if (u.username) {
    u.username = '***';
    changed = true;
  }
  const params = [...u.searchParams.keys()];
  if (params.some((k) => SECRET_PARAM.test(k))) {
    const hidden = new URLSearchParams();
    for (const [k, v] of u.searchParams) hidden.append(k, SECRET_PARAM.test(k) ? '***' : v);
    u.search = hidden.toString();
    changed = true;
  }
  return changed ? u.href.replaceAll('%2A%2A%2A', '***') : url;
}
