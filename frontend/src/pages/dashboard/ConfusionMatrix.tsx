// The active model's confusion matrix on its held-out labels, shaded by count; each cell's
// text is black or white, whichever contrasts more with its shade (at least 4.5:1, WCAG AA).

const GREEN = [21, 128, 61]; // right answers (the diagonal)
const RED = [185, 28, 28]; // confusions

function luminance([r, g, b]: number[]): number {
  const channel = (c: number) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

export function contrast(a: number[], b: number[]): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

/** A cell's opaque shade (its colour at `strength` over white) and the text colour to use. */
export function cellColors(strength: number, diagonal: boolean): { background: number[]; text: number[] } {
  const alpha = Math.max(0, Math.min(1, strength)) * 0.85;
  const background = (diagonal ? GREEN : RED).map((c) => Math.round(255 + (c - 255) * alpha));
  const white = [255, 255, 255];
  const black = [0, 0, 0];
  return { background, text: contrast(background, white) >= contrast(background, black) ? white : black };
}

export function ConfusionMatrix({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const max = Math.max(1, ...matrix.flat());
  return (
    <div className="confusion-wrap">
      <table className="confusion">
        <caption className="muted small">Rows: the true class; columns: the model’s prediction.</caption>
        <thead>
          <tr>
            <td />
            {matrix[0]?.map((_, j) => (
              <th key={j} scope="col">
                {labels[j] ?? j}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr key={i}>
              <th scope="row">{labels[i] ?? i}</th>
              {row.map((count, j) => {
                const { background, text } = cellColors(count / max, i === j);
                return (
                  <td
                    key={j}
                    className={i === j ? "diag" : undefined}
                    style={{ backgroundColor: `rgb(${background})`, color: `rgb(${text})` }}
                  >
                    {count}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
