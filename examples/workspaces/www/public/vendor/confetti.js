// A vendored third-party script, committed with the app. `vendor/` is a default exclude, but git
// tracks this file, so it is synced (try: sync-agent files --why www/public/vendor/confetti.js).
export function confetti() {
  return '🎉';
}
