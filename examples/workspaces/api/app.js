import { createServer } from 'node:http';
import { users } from './routes/users.js';

createServer((req, res) => {
  if (req.url === '/users') return users(req, res);
  res.writeHead(404).end();
}).listen(process.env.PORT ?? 4000);
