// `make synth`: every profile's manifests into dist/<profile>/. IMG overrides the gateway image (make up sets
// it), REDIS_IMG the in-cluster Redis image (the real node's tests set it).
import { join } from 'node:path';
import { PROFILES, writeProfile, type ProfileName } from './synth.ts';

const root = join(import.meta.dirname, '..');
const only = process.env.PROFILE_ONLY as ProfileName | undefined;
for (const profile of Object.keys(PROFILES) as ProfileName[]) {
  if (only && profile !== only) continue;
  const files = writeProfile(profile, join(root, 'dist', profile), { image: process.env.IMG || undefined, redisImage: process.env.REDIS_IMG || undefined });
  console.log(`${profile}: ${files.map((f) => f.slice(root.length + 1)).join(', ')}`);
}
