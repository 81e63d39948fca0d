/** Worker thread for manifest-decoder.ts: decodes and validates one manifest per message. */
import { parentPort } from 'node:worker_threads';
import { decodeManifest, isSyncError } from '@workspace-sync/shared';
import type { DecodeReply, DecodeRequest } from './manifest-decoder.js';

const port = parentPort!;

port.on('message', ({ id, body, where }: DecodeRequest) => {
  let reply: DecodeReply;
  try {
    reply = { id, manifest: decodeManifest(Buffer.from(body.buffer, body.byteOffset, body.byteLength), where) };
  } catch (err) {
    reply = isSyncError(err)
      ? { id, error: { code: err.code, message: err.message, hint: err.hint } }
      : { id, error: { code: undefined, message: (err as Error).message, hint: undefined } };
  }
  port.postMessage(reply);
});
