/**
 * Builds one deployable bundle with the options in `cdk/lib/bundles.ts`:
 *   node --import tsx cdk/bin/bundle.ts <api|sweeper|gateway> <outdir>
 * The gateway image's build stage runs it; NodejsFunction builds the Lambda bundles itself.
 */
import { resolve } from 'node:path';
import { BUNDLE_NAMES, type BundleName, buildBundle } from '../lib/bundles';

const [name, outdir] = process.argv.slice(2);
if (!name || !outdir || !BUNDLE_NAMES.includes(name as BundleName)) {
  process.stderr.write(`usage: bundle.ts <${BUNDLE_NAMES.join('|')}> <outdir>\n`);
  process.exit(2);
}
const built = await buildBundle(name as BundleName, resolve(outdir));
for (const file of built.files) process.stdout.write(`${built.name}: ${file.name} ${file.bytes} bytes\n`);
