// Colours, legends and words of the map. The palettes are safe for colour-blind readers:
// pace is a diverging orange–blue scale (behind: orange, ahead: blue), coverage and
// priority a sequential viridis scale; every legend says in words what a colour means.

export const LABELS = {
  conversations: 'Samtal',
  doors: 'Dörrar',
  new_members: 'Nya medlemmar',
  active_volunteers: 'Aktiva volontärer',
  coverage: 'Täckning',
  priority: 'Prioritet',
};

export const STATUS = {
  done: 'Klart',
  on_track: 'I takt',
  at_risk: 'I takt, prognos under mål',
  behind: 'Efter takten',
  no_target: 'Inget mål',
};

const NONE = '#bdbdbd';
// share of target / share the pace expects today
const PACE = [
  { below: 0.5, colour: '#b35806', label: 'Under halva takten' },
  { below: 0.8, colour: '#f1a340', label: '50–80 % av takten' },
  { below: 1.0, colour: '#fee0b6', label: '80–100 % av takten' },
  { below: 1.5, colour: '#9ecae1', label: 'I takt (100–150 %)' },
  { below: Infinity, colour: '#2166ac', label: 'Före takten (över 150 %)' },
];
const VIRIDIS = ['#fde725', '#5ec962', '#21918c', '#3b528b', '#440154'];
const COVERAGE = [
  { below: 0.2, label: 'Under 20 % knackat' },
  { below: 0.4, label: '20–40 %' },
  { below: 0.6, label: '40–60 %' },
  { below: 0.8, label: '60–80 %' },
  { below: Infinity, label: '80 % eller mer' },
].map((bin, i) => ({ ...bin, colour: VIRIDIS[i] }));

let priorityBreaks = [];

export function formatNumber(value) {
  if (value == null) return '–';
  return Math.round(Number(value)).toLocaleString('sv-SE');
}

export function formatShare(value) {
  if (value == null) return '–';
  return `${Math.round(value * 100)} %`;
}

function binOf(bins, value) {
  return bins.find((bin) => value < bin.below);
}

export function colourOf(metric, p) {
  if (metric === 'coverage') {
    const share = p.coverage && p.coverage.share;
    return share == null ? NONE : binOf(COVERAGE, share).colour;
  }
  if (metric === 'priority') {
    if (p.priority == null) return NONE;
    const i = priorityBreaks.findIndex((b) => p.priority <= b);
    return VIRIDIS[i < 0 ? VIRIDIS.length - 1 : i];
  }
  const m = p.progress && p.progress[metric];
  if (!m || m.pace == null) return NONE;
  return binOf(PACE, m.pace).colour;
}

function quantiles(values, n) {
  const sorted = [...values].sort((a, b) => a - b);
  return Array.from({ length: n }, (_, i) => sorted[Math.min(sorted.length - 1, Math.floor(((i + 1) * sorted.length) / n) - 1)]);
}

const UNCOVERED = { colour: '#ffffff', dashed: true, label: 'Ingen förening täcker (streckad kant)' };

export function legendOf(metric, features) {
  if (metric === 'coverage') {
    return {
      title: 'Täckning: andel hushåll knackade',
      items: [...COVERAGE, { colour: NONE, label: 'Inga områden skurna' }, UNCOVERED],
    };
  }
  if (metric === 'priority') {
    const values = features.map((f) => f.properties.priority).filter((v) => v != null);
    priorityBreaks = values.length ? quantiles(values, VIRIDIS.length) : [];
    const items = priorityBreaks.map((b, i) => ({
      colour: VIRIDIS[i],
      label: `${i === 0 ? 'Upp till' : 'Till'} ${formatNumber(b)} röstberättigade som inte röstade`,
    }));
    return {
      title: 'Prioritet: röstberättigade som inte röstade',
      items: [...items, { colour: NONE, label: 'Inget valresultat' }, UNCOVERED],
    };
  }
  return {
    title: `${LABELS[metric]}: utfall mot takten i dag`,
    items: [...PACE, { colour: NONE, label: 'Inget mål' }, UNCOVERED],
  };
}
