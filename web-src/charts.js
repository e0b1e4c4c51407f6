// Charts of hunting results with Chart.js: a KQL render's chart, or one picked on the page.
import {
  ArcElement, BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController,
  LineElement, PieController, PointElement, Title, Tooltip,
} from "chart.js";

Chart.register(ArcElement, BarController, BarElement, CategoryScale, Filler, Legend, LinearScale, LineController,
  LineElement, PieController, PointElement, Title, Tooltip);

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
  "#65a30d", "#9333ea"];
const isTime = (type) => /^(TIMESTAMP|DATE)/i.test(type || "");
const timeLabel = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
// Every time the server sends is UTC; one without an offset (a TIMESTAMP: bin() gives those)
// would be read as the browser's local time, so it is read as UTC.
const parseTime = (value) => {
  const text = String(value ?? "");
  return Date.parse(/(Z|[+-]\d\d(:?\d\d)?)$/i.test(text) || !text.includes("T") ? text : `${text}Z`);
};

// Rows into datasets: one per y column and value of the series columns.
function datasets(chart, result) {
  const at = (name) => result.columns.indexOf(name);
  const xi = at(chart.x);
  const yis = chart.y.map(at);
  const sis = (chart.series || []).map(at);
  const xTime = isTime((result.column_types || [])[xi]);
  const groups = new Map();
  const labels = [];
  for (const row of result.rows) {
    const raw = row[xi];
    const x = chart.kind === "timechart" ? parseTime(raw) : xTime ? timeLabel(parseTime(raw)) : String(raw ?? "");
    if (chart.kind === "timechart" && Number.isNaN(x)) continue;
    if (chart.kind !== "timechart" && !labels.includes(x)) labels.push(x);
    const split = sis.map((i) => String(row[i] ?? "")).join(" / ");
    yis.forEach((yi, k) => {
      const name = [split, yis.length > 1 || !split ? chart.y[k] : ""].filter(Boolean).join(" · ");
      if (!groups.has(name)) groups.set(name, new Map());
      const points = groups.get(name);
      points.set(x, (points.get(x) || 0) + (Number(row[yi]) || 0));
    });
  }
  return { groups, labels };
}

const charts = new WeakMap();

// Draw `chart` ({kind, x, y, series, title, xtitle, ytitle, mode, legend}) of `result` into the
// canvas inside `container`; the container's data attributes say what was drawn.
export function drawChart(container, chart, result) {
  charts.get(container)?.destroy();
  const canvas = container.querySelector("canvas");
  const { groups, labels } = datasets(chart, result);
  if (chart.mode === "stacked100") {
    // Each x's values as percentages of their sum.
    const totals = new Map();
    for (const points of groups.values()) for (const [x, y] of points) totals.set(x, (totals.get(x) || 0) + y);
    for (const points of groups.values()) for (const [x, y] of points) points.set(x, totals.get(x) ? (100 * y) / totals.get(x) : 0);
  }
  const stacked = chart.mode === "stacked" || chart.mode === "stacked100";
  const names = [...groups.keys()];
  let config;
  if (chart.kind === "piechart") {
    const [only] = groups.values();
    const values = labels.map((l) => (only ? only.get(l) || 0 : 0));
    config = {
      type: "pie",
      data: { labels, datasets: [{ data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    };
  } else if (chart.kind === "timechart") {
    // Ticks on the bins' boundaries (UTC): a step of the smallest gap between two times, widened
    // to keep about ten ticks.
    const times = [...new Set([...groups.values()].flatMap((points) => [...points.keys()]))].sort((a, b) => a - b);
    const gap = times.slice(1).reduce((least, x, i) => Math.min(least, x - times[i]), Infinity);
    const step = Number.isFinite(gap) && gap > 0 ? gap * Math.ceil((times.at(-1) - times[0]) / gap / 10 || 1) : undefined;
    config = {
      type: "line",
      data: {
        datasets: names.map((name, i) => ({
          label: name,
          data: [...groups.get(name)].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y })),
          borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
          fill: stacked, pointRadius: 2, tension: 0,
        })),
      },
      options: {
        scales: {
          x: { type: "linear", min: times[0], max: times.at(-1),
            ticks: { callback: (v) => timeLabel(v), maxRotation: 0, autoSkipPadding: 24, stepSize: step },
            title: { display: true, text: chart.xtitle || `${chart.x} (UTC)` } },
          y: { stacked, beginAtZero: true, title: { display: Boolean(chart.ytitle), text: chart.ytitle || "" } },
        },
        plugins: { tooltip: { callbacks: { title: (items) => timeLabel(items[0].parsed.x) } } },
      },
    };
  } else {
    const horizontal = chart.kind === "barchart";
    config = {
      type: "bar",
      data: {
        labels,
        datasets: names.map((name, i) => ({
          label: name, data: labels.map((l) => groups.get(name).get(l) ?? null),
          backgroundColor: PALETTE[i % PALETTE.length],
        })),
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        scales: {
          x: { stacked, title: { display: Boolean(chart.xtitle), text: chart.xtitle || "" } },
          y: { stacked, title: { display: Boolean(chart.ytitle), text: chart.ytitle || "" } },
        },
      },
    };
  }
  config.options = {
    ...(config.options || {}),
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: {
      ...((config.options || {}).plugins || {}),
      legend: { display: chart.legend !== false && (chart.kind === "piechart" || names.length > 1) },
      title: { display: Boolean(chart.title), text: chart.title || "" },
    },
  };
  const drawn = new Chart(canvas, config);
  charts.set(container, drawn);
  const points = drawn.data.datasets.reduce((n, d) => n + d.data.filter((v) => v !== null).length, 0);
  const ySum = drawn.data.datasets.reduce((n, d) => n + d.data.reduce((m, v) => m + (typeof v === "number" ? v : v?.y ?? 0), 0), 0);
  Object.assign(container.dataset, {
    chartKind: chart.kind, series: String(drawn.data.datasets.length), points: String(points), ySum: String(Math.round(ySum)),
  });
  if (chart.kind === "timechart") {
    const xs = drawn.data.datasets.flatMap((d) => d.data.map((p) => p.x));
    Object.assign(container.dataset, { xFrom: timeLabel(Math.min(...xs)), xTo: timeLabel(Math.max(...xs)) });
  }
  canvas.setAttribute("aria-label", `${chart.title || chart.kind}: ${chart.y.join(", ")} by ${chart.x}`
    + ((chart.series || []).length ? ` and ${chart.series.join(", ")}` : ""));
  return drawn;
}

export function clearChart(container) {
  charts.get(container)?.destroy();
  charts.delete(container);
}
