// Binding a listener, and the one error a taken or forbidden address becomes: it names the address and
// the policy setting that chose it, so the CLI can say in one line what is wrong and what to change.
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FloodgateError, hasBrand } from '../core/errors.js';

/** The policy key an address comes from. */
export type ListenSetting = 'listen' | 'admin.listen';

/** A listener could not bind; `errno` is Node's (EADDRINUSE, EACCES, EADDRNOTAVAIL, …). */
export class ListenError extends FloodgateError<'listen_failed'> {
  constructor(
    readonly address: string,
    readonly setting: ListenSetting,
    readonly errno: string,
    cause: unknown,
  ) {
    super('ListenError', 'listen_failed', listenProblem(address, errno, cause), { cause });
  }
}

export function isListenError(err: unknown): err is ListenError {
  return hasBrand(err, 'ListenError');
}

function listenProblem(address: string, errno: string, cause: unknown): string {
  switch (errno) {
    case 'EADDRINUSE':
      return `${address} is already in use (another floodgate?)`;
    case 'EACCES':
      return `${address} needs privileges this process lacks (ports below 1024 usually do)`;
    case 'EADDRNOTAVAIL':
      return `${address} is not an address of this machine`;
    default:
      return `cannot listen on ${address}: ${cause instanceof Error ? cause.message : String(cause)}`;
  }
}

/** The one line a CLI prints for `err`: the problem, then what to do about it. */
export function listenFailureLine(err: ListenError, configFile: string): string {
  const change = `change ${err.setting} in ${configFile}`;
  return err.errno === 'EADDRINUSE' ? `${err.message}; stop it or ${change}` : `${err.message}; ${change}`;
}

export async function listen(
  server: Server,
  host: string,
  port: number,
  setting: ListenSetting,
): Promise<AddressInfo> {
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'unknown';
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    throw new ListenError(address, setting, errno, err);
  }
  return server.address() as AddressInfo;
}
