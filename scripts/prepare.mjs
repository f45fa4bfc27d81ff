#!/usr/bin/env node
// The `prepare` script: run by `npm install` in a checkout (and for a git dependency). Builds
// dist/ with tsc, then links the package's own `memwire` command into node_modules/.bin, as npm
// does for a dependency's bin, so that `npx memwire …` in a fresh clone runs this checkout's
// build: npm never links a package's own bin into its own node_modules/.bin. Users of the
// published package never run it (npm links the bin for them). See docs/decisions.md.
//
// An install that has package.json but no sources yet (a container layer that copies
// package.json first, for caching) skips both steps and says so; its later `npm run build` builds.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
if (!existsSync(join(root, 'src', 'cli', 'main.ts'))) {
  console.log('prepare: no sources here (dependencies only): nothing to build or link');
  process.exit(0);
}

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
if (build.status !== 0) {
  console.error(`prepare: the build failed (tsc exit ${build.status ?? build.signal})`);
  process.exit(1);
}

const target = join(root, 'dist', 'src', 'cli', 'main.js');
const binDir = join(root, 'node_modules', '.bin');
mkdirSync(binDir, { recursive: true });
const link = join(binDir, 'memwire');
rmSync(link, { force: true });
// Relative, as npm's own bin links are, so the checkout can move.
symlinkSync('../../dist/src/cli/main.js', link);
chmodSync(target, 0o755);
