/** S3's error responses: the code, HTTP status and message real S3 answers with, as one error type. */

export class S3Error extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra elements of the XML error body (`BucketName`, `Key`, `Condition`…). */
    readonly fields: Record<string, string> = {},
    /** Extra response headers (`Content-Range` of a 416, `Last-Modified` of a 304…). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const accessDenied = (message = 'Access Denied') => new S3Error('AccessDenied', 403, message);
export const invalidAccessKeyId = (id: string) =>
  new S3Error('InvalidAccessKeyId', 403, 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: id });
export const signatureDoesNotMatch = () =>
  new S3Error('SignatureDoesNotMatch', 403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
export const invalidArgument = (message: string, name?: string, value?: string) =>
  new S3Error('InvalidArgument', 400, message, name === undefined ? {} : { ArgumentName: name, ArgumentValue: value ?? '' });
export const invalidRequest = (message: string) => new S3Error('InvalidRequest', 400, message);
export const malformedXml = () =>
  new S3Error('MalformedXML', 400, 'The XML you provided was not well-formed or did not validate against our published schema.');
export const noSuchBucket = (bucket: string) => new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', { BucketName: bucket });
export const noSuchKey = (key: string) => new S3Error('NoSuchKey', 404, 'The specified key does not exist.', { Key: key });
export const noSuchUpload = (uploadId: string) =>
  new S3Error('NoSuchUpload', 404, 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId });
export const preconditionFailed = (condition: string) =>
  new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', { Condition: condition });
export const notImplemented = (what: string) =>
  new S3Error('NotImplemented', 501, `A header or query you provided implies functionality that is not implemented: ${what}`);
