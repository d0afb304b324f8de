// The live dashboard on the admin port: GET / serves one static HTML page (inline CSS and JS, no
// build step), and GET /admin/events streams snapshots to it as server-sent events: one at connect,
// one per interval while anyone watches, and one right away when a breaker changes state. One timer
// serves every viewer and runs only while there is one.
//
// With admin.token set, GET / takes the token once as ?token=, answers with the session cookie and
// a redirect to a clean URL (admin-auth.ts); the feed lives under /admin/*, which the admin server
// guards with the same rule.
//
// Each viewer holds a socket and whatever the kernel and Node buffer for it, so both are bounded:
// at most maxViewers streams at once, and a viewer that stops reading is dropped once more than
// maxPendingBytes wait for it, rather than buffered for as long as it stays connected.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, systemClock } from '../../../core/clock.js';
import { projectPath } from '../../../core/paths.js';
import type { TransitionLog } from '../../observability/transition-log.js';
import { json } from '../admin.js';
import { bearerMatches, cookieMatches, sessionCookie, tokenMatches } from '../admin-auth.js';
import type { DashboardSnapshot } from './snapshot.js';

export interface DashboardOptions {
  /** The admin token in force, or null (read per request: a reload may change it). */
  token(): string | null;
  snapshot(): Promise<DashboardSnapshot>;
  /** When given, a breaker transition is pushed at once instead of at the next tick. */
  transitions?: TransitionLog;
  /** Between two pushed snapshots (default 1 s). */
  intervalMs?: number;
  /** Issues and ages sessions (default: the system clock). */
  clock?: Clock;
  /** Streams open at once; the next viewer gets 503 (default 32). */
  maxViewers?: number;
  /** Bytes a viewer may leave unread before it is dropped (default 256 KiB: minutes of snapshots). */
  maxPendingBytes?: number;
  onError?: (err: unknown) => void;
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  // Inline script and style only; the page talks to its own origin and nothing else.
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

let pageHtml: string | undefined;

/** The page ships beside this module's source (proxy/http/dashboard/index.html), read once. */
function page(): string {
  pageHtml ??= readFileSync(projectPath('proxy', 'http', 'dashboard', 'index.html'), 'utf8');
  return pageHtml;
}

function html(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...SECURITY_HEADERS,
    ...extra,
  });
  res.end(body);
}

const LOGIN_PAGE = (message: string): string =>
  `<!doctype html><meta charset="utf-8"><title>Floodgate</title>` +
  `<body style="font:15px system-ui,sans-serif;margin:3rem;max-width:40rem">` +
  `<h1>Floodgate</h1><p>${message}</p>` +
  `<p>Open this page once as <code>/?token=ADMIN_TOKEN</code>; the browser then keeps a session cookie.</p></body>`;

export class Dashboard {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private sending = false;
  private again = false;
  private closed = false;
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private readonly maxViewers: number;
  private readonly maxPendingBytes: number;
  private readonly onTransition = (): void => this.broadcast();

  constructor(private readonly o: DashboardOptions) {
    this.intervalMs = o.intervalMs ?? 1_000;
    this.clock = o.clock ?? systemClock;
    this.maxViewers = o.maxViewers ?? 32;
    this.maxPendingBytes = o.maxPendingBytes ?? 256 * 1024;
    o.transitions?.on('transition', this.onTransition);
  }

  /** GET /: the page, or the token exchange. */
  readonly page = (req: IncomingMessage, res: ServerResponse): void => {
    const token = this.o.token();
    if (token) {
      const given = new URL(req.url ?? '/', 'http://admin').searchParams.get('token');
      if (given !== null) {
        if (tokenMatches(given, token)) {
          // 303 to a clean URL: the token leaves the address bar and the history.
          res.writeHead(303, {
            location: '/',
            'set-cookie': sessionCookie(token, this.clock.now()),
            ...SECURITY_HEADERS,
          });
          res.end();
        } else {
          html(res, 401, LOGIN_PAGE('That token is not the admin token.'));
        }
        return;
      }
      if (!cookieMatches(req, token, this.clock.now()) && !bearerMatches(req, token)) {
        html(res, 401, LOGIN_PAGE('This dashboard needs the admin token.'));
        return;
      }
    }
    html(res, 200, page());
  };

  /** GET /admin/events (already authorized by the admin server). */
  readonly events = (req: IncomingMessage, res: ServerResponse): void => {
    if (this.clients.size >= this.maxViewers) {
      // EventSource gives up on a non-200 answer, so a refused page stops retrying.
      json(res, 503, { error: `Too many dashboard viewers (at most ${this.maxViewers})` });
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      // Proxies in front of the admin port (nginx) must not buffer the stream.
      'x-accel-buffering': 'no',
    });
    // Reconnect after 2 s if the stream breaks (a restart, a dropped connection).
    res.write('retry: 2000\n\n');
    if (this.closed) {
      res.end();
      return;
    }
    this.clients.add(res);
    req.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopTimer();
    });
    if (!this.timer) {
      this.timer = setInterval(() => this.broadcast(), this.intervalMs);
      this.timer.unref();
    }
    this.broadcast();
  };

  /** Streams open now. */
  get viewers(): number {
    return this.clients.size;
  }

  /** Ends every stream and stops listening. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    this.o.transitions?.off('transition', this.onTransition);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  /** One snapshot for every viewer; a request made while one is being built is served right after it. */
  private broadcast(): void {
    if (this.clients.size === 0) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = true;
    this.o
      .snapshot()
      .then((snap) => {
        const frame = `data: ${JSON.stringify(snap)}\n\n`;
        for (const res of this.clients) {
          // write() returning false only means "buffered"; a reader that keeps up drains it before
          // the next frame. One that has let maxPendingBytes pile up is not reading: let it go.
          if (!res.write(frame) && res.writableLength > this.maxPendingBytes) this.drop(res);
        }
      })
      .catch((err: unknown) => this.o.onError?.(err))
      .finally(() => {
        this.sending = false;
        if (this.again) {
          this.again = false;
          this.broadcast();
        }
      });
  }

  private drop(res: ServerResponse): void {
    this.clients.delete(res);
    if (this.clients.size === 0) this.stopTimer();
    res.destroy();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
