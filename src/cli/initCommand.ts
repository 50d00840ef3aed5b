import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from './usage.js';

/** A first function per runtime: it reads its input as JSON on stdin, as every function does. */
const TEMPLATES: Record<string, Record<string, string>> = {
  python: {
    'main.py': [
      '# Runs once per invocation: the input is JSON on stdin, stdout is the result\'s stdout.',
      'import json, sys',
      '',
      'event = json.loads(sys.stdin.read() or "{}")',
      'print(f"hello, {event.get(\'who\', \'world\')}")',
      '',
    ].join('\n'),
  },
  node: {
    'main.js': [
      '// Runs once per invocation: the input is JSON on stdin, stdout is the result\'s stdout.',
      "let raw = '';",
      "process.stdin.on('data', (c) => (raw += c)).on('end', () => {",
      "  const event = JSON.parse(raw || '{}');",
      "  console.log(`hello, ${event.who ?? 'world'}`);",
      '});',
      '',
    ].join('\n'),
  },
  cpp: {
    'run.sh': ['#!/bin/sh', '# Compiled once per code version (the compiler\'s output is cached), then run with the input on stdin.', 'set -e', 'g++ -O2 -o program main.cpp', 'exec ./program', ''].join('\n'),
    'main.cpp': [
      '#include <iostream>',
      '#include <iterator>',
      '#include <string>',
      '',
      'int main() {',
      '  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());',
      '  std::cout << "hello from C++, input: " << input << std::endl;',
      '}',
      '',
    ].join('\n'),
  },
};

/** `nanogrid init <folder>`: a function to start from, in a folder that is new or empty. */
export async function init(dir: string | undefined, runtime = 'python'): Promise<{ files: string[]; runtime: string }> {
  if (!dir) throw new UsageError('init needs a folder: nanogrid init my-function [--runtime python|node|cpp]');
  const files = Object.hasOwn(TEMPLATES, runtime) ? TEMPLATES[runtime] : undefined;
  if (!files) throw new UsageError(`init knows python, node and cpp, not ${JSON.stringify(runtime.slice(0, 40))}`);
  const present = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw new UsageError(`${dir}: ${err.code === 'ENOTDIR' ? 'not a folder' : err.message}`);
  });
  if (present.length > 0) throw new UsageError(`${dir} is not empty: init writes only into a new or empty folder`);
  await mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text, { mode: name.endsWith('.sh') ? 0o755 : 0o644 });
  return { files: Object.keys(files), runtime };
}
