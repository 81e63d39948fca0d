/**
 * Decodes an aws-chunked body (`STREAMING-*` payloads): `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n`
 * repeated, a zero-size chunk last, then (with a trailer) `name:value\r\n` lines and an empty line.
 * Signed chunks are verified as they end; data is passed on as it arrives, so a caller writing it
 * must drop what it wrote when this throws.
 */
import { createHash, type Hash } from 'node:crypto';
import type { ChunkSigner } from './auth.js';
import { S3Error, signatureDoesNotMatch } from './errors.js';

const MAX_LINE = 4096;

const incomplete = () => new S3Error('IncompleteBody', 400, 'You did not provide the number of bytes specified by the Content-Length HTTP header');
const badChunk = (why: string) => new S3Error('InvalidRequest', 400, `Invalid aws-chunked body: ${why}`);

export async function* decodeAwsChunked(
  source: AsyncIterable<Buffer>, opts: { signer: ChunkSigner | undefined; trailer: boolean; decodedLength: number | undefined },
): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let ended = false;
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const r = await it.next();
    if (r.done) { ended = true; return false; }
    buf = buf.length ? Buffer.concat([buf, r.value]) : r.value;
    return true;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        const text = buf.toString('latin1', 0, i);
        buf = buf.subarray(i + 2);
        return text;
      }
      if (buf.length > MAX_LINE) throw badChunk('chunk header too long');
      if (!(await more())) throw incomplete();
    }
  };

  let total = 0;
  for (;;) {
    const header = await line();
    const m = /^([0-9a-fA-F]+)(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(header);
    if (!m) throw badChunk(`bad chunk header ${JSON.stringify(header.slice(0, 100))}`);
    const size = parseInt(m[1]!, 16);
    const signature = m[2];
    if (opts.signer && !signature) throw signatureDoesNotMatch();
    const hash: Hash | undefined = opts.signer ? createHash('sha256') : undefined;
    let left = size;
    while (left > 0) {
      if (buf.length === 0 && !(await more())) throw incomplete();
      const piece = buf.subarray(0, Math.min(left, buf.length));
      buf = buf.subarray(piece.length);
      left -= piece.length;
      total += piece.length;
      hash?.update(piece);
      yield piece;
    }
    if (opts.signer) opts.signer.verifyChunk(hash!.digest('hex'), signature!);
    if (size === 0) break;
    if ((await line()) !== '') throw badChunk('chunk data longer than its size');
  }

  if (opts.trailer) {
    const lines: string[] = [];
    for (let l = await line(); l !== ''; l = await line()) lines.push(l);
    const sig = lines.findIndex((l) => l.startsWith('x-amz-trailer-signature:'));
    if (opts.signer) {
      if (sig < 0) throw signatureDoesNotMatch();
      const text = lines.slice(0, sig).map((l) => `${l}\n`).join('');
      opts.signer.verifyTrailer(text, lines[sig]!.slice('x-amz-trailer-signature:'.length).trim());
    }
  } else if ((await line()) !== '') {
    throw badChunk('data after the final chunk');
  }
  if (opts.decodedLength !== undefined && total !== opts.decodedLength) throw incomplete();
}
