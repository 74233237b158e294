// The active model's confusion matrix on its held-out labels, shaded by count.

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
                const strength = count / max;
                return (
                  <td
                    key={j}
                    className={i === j ? "diag" : undefined}
                    style={{
                      backgroundColor: `rgba(${i === j ? "21, 128, 61" : "185, 28, 28"}, ${strength * 0.85})`,
                      color: strength > 0.5 ? "#fff" : undefined,
                    }}
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
