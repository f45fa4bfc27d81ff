/**
 * The peer of the Unix-domain-socket anchor in bench `region-pingpong`: a plain JS process of
 * the same runtime (so Bun measures Bun's sockets) that connects to the parent's socket and
 * echoes every byte back. It uses nothing of memwire. It leaves when the parent closes the
 * connection or dies.
 *
 * argv: <socket path>
 */
import { connect } from 'node:net';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: uds-pingpong-peer.js <socket path>\n');
  process.exit(2);
}

const socket = connect(path);
socket.on('data', (chunk: Buffer) => {
  socket.write(chunk);
});
socket.on('end', () => socket.end());
socket.on('close', () => process.exit(0));
socket.on('error', (error) => {
  process.stderr.write(`uds-pingpong peer: ${error.message}\n`);
  process.exit(1);
});
