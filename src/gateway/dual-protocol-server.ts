/**
 * One port for HTTP/1.1 and cleartext HTTP/2 (h2c with prior knowledge).
 *
 * The AWS SDK's Bedrock runtime client talks HTTP/2 to its endpoint, also
 * to a plain `http://` one, while the OpenAI and Anthropic SDKs talk
 * HTTP/1.1. Node's cleartext HTTP/2 server does not fall back to 1.1, so
 * each new connection is sniffed: one that opens with the HTTP/2 preface
 * (`PRI * HTTP/2.0`) goes to an HTTP/2 server, any other to the HTTP/1.1
 * server that Fastify listens with. Both call the same request handler,
 * with Node's HTTP/2 compatibility objects on the HTTP/2 side.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2Session,
} from 'node:http2';
import type { Socket } from 'node:net';

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** The first bytes of every HTTP/2 connection (RFC 9113, section 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface DualProtocolOptions {
  /**
   * Longest a client may take to send a whole request (0: no limit); the
   * headers alone get at most 60 s, as Node's default.
   */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection is kept open. */
  readonly keepAliveTimeoutMs: number;
}

export function createDualProtocolServer(
  handler: Handler,
  options: DualProtocolOptions,
): Server {
  // Fastify applies its server options only to servers it creates itself,
  // so they are set here.
  const headersTimeoutMs =
    options.requestTimeoutMs > 0
      ? Math.min(options.requestTimeoutMs, 60_000)
      : 60_000;
  const http1 = createHttpServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: headersTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // How often those timeouts are checked: Node's 30 s default would
      // let a slow sender hold its connection long past its deadline.
      connectionsCheckingInterval: 250,
    },
    handler,
  );
  const http2 = createHttp2Server((request, response) =>
    handler(
      request as unknown as IncomingMessage,
      response as unknown as ServerResponse,
    ),
  );
  const sessions = new Set<Http2Session>();
  http2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });

  // Node's own listener sets up the HTTP/1.1 parser on each connection.
  const [parseHttp1] = http1.listeners('connection') as ((
    socket: Socket,
  ) => void)[];
  if (!parseHttp1)
    throw new Error('the HTTP server has no connection listener');
  http1.removeListener('connection', parseHttp1);
  http1.prependListener('connection', (socket: Socket) => {
    sniff(socket, headersTimeoutMs, (isHttp2) => {
      if (isHttp2) {
        // The HTTP/1.1 server accepts sockets half-open; HTTP/2 has no
        // half-close at the TCP level, and a half-open socket hides a
        // client that hung up (the AWS SDK drops its session when a
        // Bedrock caller aborts a stream), so the stream would run on.
        socket.allowHalfOpen = false;
        http2.emit('connection', socket);
      } else parseHttp1.call(http1, socket);
    });
  });

  // Shutdown reaches the HTTP/2 sessions too: closing stops new streams
  // and lets open ones finish; the "all" variant cuts them off.
  const close = http1.close.bind(http1);
  http1.close = (callback?: (error?: Error) => void) => {
    for (const session of sessions) session.close();
    return close(callback);
  };
  const closeAll = http1.closeAllConnections.bind(http1);
  http1.closeAllConnections = () => {
    for (const session of sessions) session.destroy();
    closeAll();
  };
  // A graceful close is already what "idle" asks: HTTP/2 finishes the
  // streams in flight and opens no more.
  const closeIdle = http1.closeIdleConnections.bind(http1);
  http1.closeIdleConnections = () => {
    for (const session of sessions) session.close();
    closeIdle();
  };
  return http1;
}

/**
 * Reads just enough of a new connection to tell the protocols apart, then
 * puts the bytes back for the chosen parser.
 */
function sniff(
  socket: Socket,
  deadlineMs: number,
  route: (isHttp2: boolean) => void,
): void {
  let seen = Buffer.alloc(0);
  const done = () => {
    clearTimeout(timer);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('error', onError);
  };
  const onReadable = () => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) {
      seen = Buffer.concat([seen, chunk]);
    }
    const decided =
      seen.length >= PREFACE.length ||
      !PREFACE.subarray(0, seen.length).equals(seen);
    if (!decided) return;
    done();
    socket.unshift(seen);
    route(seen.subarray(0, PREFACE.length).equals(PREFACE));
  };
  const onEnd = () => {
    done();
    socket.destroy();
  };
  // Until a parser owns the socket, nothing else listens for its errors:
  // a client's reset must not become an unhandled error that ends the
  // process.
  const onError = () => {
    done();
    socket.destroy();
  };
  // A connection that never says anything is closed, as a parser's
  // headers timeout would close it.
  const timer = setTimeout(onEnd, deadlineMs);
  timer.unref();
  socket.on('readable', onReadable);
  socket.once('end', onEnd);
  socket.on('error', onError);
}
