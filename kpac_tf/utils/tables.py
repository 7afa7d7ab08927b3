"""Plain-text tables for the apps' printed results."""


def text_table(rows, left=1):
    """`rows` (the header first; each a sequence of str) as aligned lines: the first
    `left` columns left-aligned, the rest right-aligned, a dashed line under the
    header. Returns str."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) if i < left else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
