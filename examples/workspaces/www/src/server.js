import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';

createServer(async (_req, res) => {
  res.end(await readFile(new URL('../public/index.html', import.meta.url)));
}).listen(process.env.PORT ?? 3000);
