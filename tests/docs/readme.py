#!/usr/bin/env python3
"""Reads README.md for the doc test (tests/docs/run.sh).

  readme.py api README          every function of the API table, one per line:
                                name(arg, arg = default, ...), sorted
  readme.py blocks README DIR   writes each ```sql block to DIR/NNN.sql, with
                                a first line '-- README: <heading>'
  readme.py section README TITLE  prints the text of the section (## or ###)
                                whose heading starts with TITLE
  readme.py line README PREFIX  prints the first line starting with PREFIX
                                (inside a code block)
  readme.py fence README LANG FIRSTLINE  prints the ```LANG block whose first
                                line is FIRSTLINE (or the first ```LANG block
                                of the section titled FIRSTLINE)
"""
import os
import re
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def api(path):
    out = []
    inside = False
    for line in lines(path):
        if line.startswith("## "):
            inside = line.startswith("## API")
            continue
        if not inside or not line.startswith("| `"):
            continue
        first = line.split(" | ")[0]
        for sig in re.findall(r"`([a-z_]+\([^`]*\))`", first):
            name, args = sig.split("(", 1)
            args = args[:-1]
            parts = [a.strip() for a in split_args(args) if a.strip()]
            out.append(f"{name}({', '.join(parts)})")
    for s in sorted(set(out)):
        print(s)


def split_args(args):
    """Splits on commas outside quotes and brackets."""
    parts, depth, quote, cur = [], 0, False, ""
    for ch in args:
        if ch == "'":
            quote = not quote
        elif not quote and ch in "([{":
            depth += 1
        elif not quote and ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def blocks(path, outdir):
    os.makedirs(outdir, exist_ok=True)
    heading = ""
    block = None
    n = 0
    for line in lines(path):
        if block is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if line.strip() == "```sql":
                block = []
            continue
        if line.strip() == "```":
            n += 1
            with open(os.path.join(outdir, f"{n:03d}.sql"), "w", encoding="utf-8") as f:
                f.write(f"-- README: {heading}\n" + "\n".join(block) + "\n")
            block = None
            continue
        block.append(line)
    print(n)


def section(path, title):
    out, level, inside = [], 0, False
    for line in lines(path):
        m = re.match(r"^(#+) (.*)", line)
        if m:
            if inside and len(m.group(1)) <= level:
                break
            if m.group(2).startswith(title):
                inside, level = True, len(m.group(1))
                continue
        if inside:
            out.append(line)
    print("\n".join(out))


def first_line(path, prefix):
    for line in lines(path):
        if line.strip().startswith(prefix):
            print(line.strip())
            return
    sys.exit(f"no line starting with {prefix!r}")


def fence(path, lang, first):
    block, title, heading = None, None, ""
    for line in lines(path):
        if block is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            if line.strip() == "```" + lang:
                block = []
            continue
        if line.strip() == "```":
            if block and (block[0].strip() == first or heading.startswith(first)):
                print("\n".join(block))
                return
            block = None
            continue
        block.append(line)
    sys.exit(f"no ```{lang} block for {first!r}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "api":
        api(sys.argv[2])
    elif cmd == "blocks":
        blocks(sys.argv[2], sys.argv[3])
    elif cmd == "section":
        section(sys.argv[2], sys.argv[3])
    elif cmd == "line":
        first_line(sys.argv[2], sys.argv[3])
    elif cmd == "fence":
        fence(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
