// rclone pointed at the same server through env-only config (no config file touched).
export function rcloneEnv(s3) {
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE; // breaks rclone's S3 backend on these machines
  return {
    ...env,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: s3.env.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: s3.env.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  };
}
