// Served by the example monitor from its scratch copy of /workspaces/demo. `ms` comes from the
// `npm install` the monitor ran in that copy: node_modules never existed in the bucket or the mount.
const http = require('node:http');
const ms = require('ms');

const port = Number(process.env.PORT || 3000);
const started = Date.now();

http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`demo workspace running from ${__dirname} for ${ms(Date.now() - started, { long: true })}\n`);
  })
  .listen(port, () => console.log(`demo: listening on port ${port}`));
