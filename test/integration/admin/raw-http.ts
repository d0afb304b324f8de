// One HTTP/1.x exchange as raw bytes over a real socket: the test writes exactly the request line
// and headers it means (a Host no client library would send, none at all, Sec-Fetch-* as a browser
// sends them) and reads back everything the server sent until it closed the connection.
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  /** Header names lowercased; a repeated header keeps its last value. */
  headers: Record<string, string>;
  /** Every byte after the blank line, as text. */
  body: string;
}

export function parseAnswer(text: string): RawAnswer {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) };
}

/**
 * Sends `head` (request line and headers, without the blank line) plus `Connection: close`, and
 * resolves with the parsed answer once the server has closed its side.
 */
export function rawRequest(port: number, head: string[], body = '', from?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    // `from`: a local address of this host (127.0.0.2) to connect from, when the peer's address matters.
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      text += d;
    });
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      try {
        resolve(parseAnswer(text));
      } catch (err) {
        reject(err);
      }
    });
    const length = body === '' ? [] : [`Content-Length: ${Buffer.byteLength(body)}`];
    // write, not end: Node's server drops a request whose client half-closes before the answer.
    socket.write(`${[...head, ...length, 'Connection: close'].join('\r\n')}\r\n\r\n${body}`);
  });
}
