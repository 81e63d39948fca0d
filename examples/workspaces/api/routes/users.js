export function users(_req, res) {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify([{ id: 1, name: 'Ada' }]));
}
