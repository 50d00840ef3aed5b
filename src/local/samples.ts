import type { ZipFiles } from './client.js';

/** Sample functions shared by the demo, the tests and the bench. */
export const SAMPLES = {
  pythonHello: { 'main.py': 'print("hello from python")\n' },
  pythonFail: {
    'main.py': 'import sys\nprint("about to fail")\nprint("something went wrong", file=sys.stderr)\nsys.exit(3)\n',
  },
  cppHello: {
    'main.cpp': '#include <iostream>\nint main() { std::cout << "hello from c++" << std::endl; return 0; }\n',
    'run.sh': { content: 'set -e\ng++ -O0 -o program main.cpp\n./program\n', mode: 0o100755 },
  },
  /**
   * An import-heavy function, like the published serverless benchmarks' templating page:
   * Jinja2 (Debian's python3-jinja2, in nanogrid/python) renders a small page from its input.
   */
  pythonTemplate: {
    'main.py':
      'import json, sys\nfrom jinja2 import Environment\n' +
      'data = json.loads(sys.stdin.read() or "{}")\n' +
      'page = Environment(autoescape=True).from_string("<h1>{{ title }}</h1><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>")\n' +
      'print(page.render(title=data.get("title", "NanoGrid"), items=data.get("items", [1, 2, 3])))\n',
  },
  /**
   * The same page in handler mode (nanogrid.json): Jinja2 is imported and the template
   * compiled once per container; each invocation is a call of handle().
   */
  pythonTemplateHandler: {
    'nanogrid.json': '{"handler": "app.handle"}\n',
    'app.py':
      'from jinja2 import Environment\n' +
      'page = Environment(autoescape=True).from_string("<h1>{{ title }}</h1><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>")\n' +
      'def handle(event, context):\n' +
      '    data = event if isinstance(event, dict) else {}\n' +
      '    return page.render(title=data.get("title", "NanoGrid"), items=data.get("items", [1, 2, 3]))\n',
  },
  /** Node.js (the node runtime): `node main.js`, its input as JSON on stdin. */
  nodeHello: {
    'main.js': "let input = '';\nprocess.stdin.on('data', (d) => (input += d));\nprocess.stdin.on('end', () => console.log(input ? `hello from node, ${JSON.parse(input).name}` : 'hello from node'));\n",
  },
  /** Sleeps `ms` then prints: a function whose run time is known. */
  pythonSleep: (ms: number): ZipFiles => ({ 'main.py': `import time\ntime.sleep(${ms / 1000})\nprint("slept ${ms} ms")\n` }),
  /** Touches `bytes` of memory for `holdMs`, frees it, then exits. */
  pythonAllocate: (bytes: number, holdMs = 100): ZipFiles => ({
    'main.py': `import time\nb = bytearray(${bytes})\nfor i in range(0, len(b), 4096):\n    b[i] = 1\ntime.sleep(${holdMs / 1000})\ndel b\nprint("allocated ${bytes}")\n`,
  }),
} satisfies Record<string, ZipFiles | ((...a: never[]) => ZipFiles)>;
