/** Bucket operations: ListBuckets, Create/Head/Delete, location, versioning, ACL, DeleteObjects. */
import { S3Error, malformedXml } from './errors.js';
import { isoDate, readSmallBody, send, sendXml, type Ctx } from './http.js';
import { ownerXml } from './listing.js';
import { childText, children, el, rootElement, xmlDocument } from './xml.js';

export function listBuckets(ctx: Ctx): void {
  const buckets = ctx.store.list().map((b) => `<Bucket>${el('Name', b.name)}${el('CreationDate', isoDate(b.created))}</Bucket>`).join('');
  sendXml(ctx, xmlDocument('ListAllMyBucketsResult', `${ownerXml(ctx)}<Buckets>${buckets}</Buckets>`));
}

/** S3's naming rules for new buckets (3-63 of a-z 0-9 . -, no IP addresses, no `..`). */
export function validBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(name)
    && !name.includes('.-') && !name.includes('-.');
}

export async function createBucket(ctx: Ctx): Promise<void> {
  if (!validBucketName(ctx.bucket)) throw new S3Error('InvalidBucketName', 400, 'The specified bucket is not valid.', { BucketName: ctx.bucket });
  const body = (await readSmallBody(ctx)).toString('utf8');
  if (body.trim()) {
    const location = childText(rootElement(body, 'CreateBucketConfiguration'), 'LocationConstraint');
    // One region here; us-east-1 is what an empty constraint means.
    if (location !== undefined && location !== '' && location !== 'us-east-1') {
      throw new S3Error('InvalidLocationConstraint', 400, 'The specified location-constraint is not valid', { LocationConstraint: location });
    }
  }
  // Creating a bucket one already owns succeeds, as in us-east-1 (the one region here).
  await ctx.store.create(ctx.bucket);
  send(ctx, 200, { location: `/${ctx.bucket}` });
}

export function headBucket(ctx: Ctx): void {
  ctx.store.need(ctx.bucket);
  send(ctx, 200, { 'x-amz-bucket-region': 'us-east-1' });
}

export async function deleteBucket(ctx: Ctx): Promise<void> {
  await ctx.store.remove(ctx.bucket);
  send(ctx, 204);
}

export function getBucketLocation(ctx: Ctx): void {
  ctx.store.need(ctx.bucket);
  sendXml(ctx, xmlDocument('LocationConstraint', ''));
}

export function getBucketVersioning(ctx: Ctx): void {
  ctx.store.need(ctx.bucket);
  sendXml(ctx, xmlDocument('VersioningConfiguration', ''));
}

/** The one ACL everything here has: the owner's full control. */
export function getAcl(ctx: Ctx): void {
  const grant = `<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">${el('ID', ctx.owner.id)}${el('DisplayName', ctx.owner.displayName)}</Grantee><Permission>FULL_CONTROL</Permission></Grant>`;
  sendXml(ctx, xmlDocument('AccessControlPolicy', `${ownerXml(ctx)}<AccessControlList>${grant}</AccessControlList>`));
}

export async function deleteObjects(ctx: Ctx): Promise<void> {
  const bucket = ctx.store.need(ctx.bucket);
  const doc = rootElement((await readSmallBody(ctx)).toString('utf8'), 'Delete');
  const quiet = childText(doc, 'Quiet')?.trim().toLowerCase() === 'true';
  const objects = children(doc, 'Object');
  if (objects.length === 0 || objects.length > 1000) throw malformedXml();
  const keys = objects.map((o) => {
    const key = childText(o, 'Key');
    if (key === undefined) throw malformedXml();
    return key;
  });
  const results = await Promise.all(keys.map(async (key) => {
    try {
      await bucket.delete(key);
      return quiet ? '' : `<Deleted>${el('Key', key)}</Deleted>`;
    } catch (err) {
      const e = err instanceof S3Error ? err : new S3Error('InternalError', 500, (err as Error).message);
      return `<Error>${el('Key', key)}${el('Code', e.code)}${el('Message', e.message)}</Error>`;
    }
  }));
  sendXml(ctx, xmlDocument('DeleteResult', results.join('')));
}
