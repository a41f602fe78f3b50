/**
 * Lambda bundles (target 6), through `bundle-sizes.ts`: every bundle built as the stack and the
 * image build it, and the API bundle's size and module load (a fresh Node process importing it,
 * AWS SDK included) against the targets.
 */
import { API_BUNDLE_TARGET_BYTES, API_LOAD_TARGET_MS, bundleSizes } from './bundle-sizes';
import type { BenchBasics, Measured } from './context';
import type { Figure } from './report';

export async function measureBundle(_bench: BenchBasics): Promise<Measured> {
  const sizes = await bundleSizes();
  const api = sizes.find((s) => s.name === 'api');
  const others = sizes
    .filter((s) => s.name !== 'api')
    .map(
      (s) =>
        `${s.name} ${(s.bytes / 1000).toFixed(0)} KB` +
        (s.extraBytes > 0
          ? ` + ${(s.extraBytes / 1000).toFixed(0)} KB beside it (native helper, crypto worker)`
          : '') +
        (s.loadMs !== undefined ? `, loads in ${s.loadMs} ms` : ''),
    )
    .join('; ');
  const figures: Figure[] = [
    {
      id: 'api.bundle.bytes',
      label: 'API Lambda bundle, minified',
      unit: 'KB',
      ours: api ? api.bytes / 1000 : null,
      openssh: null,
      target: {
        text: `≤ ${API_BUNDLE_TARGET_BYTES / 1024} KiB`,
        met: api ? api.bytes <= API_BUNDLE_TARGET_BYTES : null,
      },
      note: `built by bench/bundle-sizes.ts with the stack's esbuild options (ESM, minified, node22, AWS SDK external); gzip ${api ? (api.gzipBytes / 1000).toFixed(0) : '?'} KB; other bundles: ${others}`,
    },
    {
      id: 'api.bundle.load',
      label: 'API Lambda bundle: module load',
      unit: 'ms',
      ours: api?.loadMs ?? null,
      openssh: null,
      target: {
        text: `≤ ${API_LOAD_TARGET_MS} ms`,
        met: api?.loadMs !== undefined ? api.loadMs <= API_LOAD_TARGET_MS : null,
      },
      note: `median of 3 fresh \`node\` processes (Node ${process.versions.node} on this machine; Lambda runs Node 22 on arm64); the AWS SDK's share ${api?.sdkLoadMs ?? '?'} ms`,
    },
  ];
  return { figures, details: { bundles: sizes } };
}
