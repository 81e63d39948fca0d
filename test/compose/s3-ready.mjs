// Health check of the S3 server standing in for MinIO: healthy once S3_ENDPOINT answers HTTP at all
// (an anonymous request gets 403 or 200; either means the server is serving).
const endpoint = process.env.S3_ENDPOINT;
try {
  const res = await fetch(endpoint, { signal: AbortSignal.timeout(2000) });
  console.log(`${endpoint} answered ${res.status}`);
} catch (err) {
  console.error(`${endpoint} does not answer: ${err.cause?.code ?? err.message}`);
  process.exit(1);
}
