// The orchestrator's dashboard: polls /api/v1/dashboard/* and draws the page with DOM calls only (text is
// always set as text, never parsed as HTML). The admin token lives in this tab's sessionStorage and is
// sent only as "Authorization: Bearer" on the admin POSTs.
(() => {
  'use strict';

  const POLL_MS = 1500;
  const COST_POLL_MS = 10000;
  const COST_BATCHES = 60;
  const COST_ROWS = 20;
  const TOKEN_KEY = 'madara-orchestrator.admin-token';
  const SAMPLE_WINDOW_S = 15 * 60;
  const MIN_CHART_SPAN_S = 30;
  const STATUSES = ['Created', 'LockedForProcessing', 'PendingVerification', 'Completed', 'VerificationTimeout',
    'VerificationFailed', 'Failed', 'PendingRetry'];
  // The jobs filter's first choice: every job stuck until an operator acts, and those waiting out an outage.
  const ATTENTION = 'attention';
  const ATTENTION_LABEL = 'needs attention';
  const TYPES = ['SnosRun', 'ProofCreation', 'Aggregator', 'StateTransition', 'ProofRegistration', 'DataSubmission'];
  const ADMIN_ACTIONS = [
    { path: '/admin/jobs/retry/failed', label: 'Retry all failed jobs' },
    { path: '/admin/jobs/reverify/verification-timeout', label: 'Re-verify timed-out jobs' },
    { path: '/admin/jobs/requeue/pending-verification', label: 'Re-queue pending verifications' },
    { path: '/admin/jobs/requeue/created', label: 'Re-queue created jobs' },
    { path: '/admin/batches/close-open', label: 'Close open batches' },
  ];

  const WEIGHT_LABELS = {
    l1_gas: 'L1 gas',
    message_segment_length: 'Message segment',
    n_events: 'Events',
    state_diff_size: 'State diff size',
    sierra_gas: 'Sierra gas',
    n_txs: 'Transactions',
    proving_gas: 'Proving gas',
    receipt_l2_gas: 'Receipt L2 gas',
  };

  const state = {
    token: readToken(),
    overview: null,
    samples: [],
    jobs: [],
    jobsStatus: ATTENTION,
    jobsType: '',
    block: null,
    blockView: null,
    blockError: null,
    pollError: null,
    lastOk: null,
    message: null,
    armed: null,
    rendered: {},
    cost: null,
    costError: null,
    costAt: 0,
  };

  // ---------------------------------------------------------------------------------------------
  // Small helpers

  function readToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function writeToken(token) {
    state.token = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage refused: the token stays in memory only */ }
  }

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const byId = (id) => document.getElementById(id);
  const COMPACT = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
  const compact = (n) => (n === null || n === undefined ? '—' : COMPACT.format(n));
  const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  const block = (n) => (n === null || n === undefined ? '—' : String(n));

  function range(start, end) {
    if (start === null || start === undefined) return '—';
    return start === end ? `${start}` : `${start}–${end}`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function clock(ts) {
    if (!ts) return '—';
    const d = new Date(ts * 1000);
    return d.toLocaleTimeString('en-GB', { hour12: false });
  }

  function stamp(ts) {
    if (!ts) return '—';
    const d = new Date(ts * 1000);
    return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB', { hour12: false })}`;
  }

  function ago(ts, now) {
    if (!ts) return '—';
    return `${duration(now - ts)} ago`;
  }

  function wei(value) {
    if (value === null || value === undefined) return '—';
    const n = Number(value);
    if (n >= 1e15) return `${(n / 1e18).toFixed(6)} ETH`;
    if (n >= 1e6) return `${(n / 1e9).toLocaleString('en-US', { maximumFractionDigits: 3 })} gwei`;
    return `${num(n)} wei`;
  }

  // An amount in the settlement layer's 18-decimal unit (wei → ETH; an L3's fri → STRK), to 3 significant digits.
  function coin(value, unit) {
    if (value === null || value === undefined) return '—';
    const n = Number(value) / 1e18;
    if (n === 0) return `0 ${unit}`;
    if (n < 1e-6) return unit === 'ETH' ? wei(value) : `${num(value)} fri`;
    const text = n >= 1 ? n.toLocaleString('en-US', { maximumFractionDigits: 3 }) : n.toPrecision(3).replace(/0+$/, '').replace(/\.$/, '');
    return `${text} ${unit}`;
  }

  const percent = (ratio) => (ratio === null || ratio === undefined ? '—' : `${(100 * ratio).toFixed(ratio < 0.1 ? 1 : 0)}%`);

  function shortHash(hash) {
    if (!hash) return '—';
    return hash.length > 22 ? `${hash.slice(0, 12)}…${hash.slice(-8)}` : hash;
  }

  const pill = (status) => h('span', { class: `pill ${status}` }, status);

  // Re-render a panel only when what it shows changed: buttons keep their identity between polls.
  function changed(panel, data) {
    const key = JSON.stringify(data);
    if (state.rendered[panel] === key) return false;
    state.rendered[panel] = key;
    return true;
  }

  function replace(id, ...children) {
    const node = byId(id);
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
    return node;
  }

  // ---------------------------------------------------------------------------------------------
  // Talking to the API

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok || !body || body.success === false) {
      throw new Error((body && body.message) || `${response.status} ${response.statusText}`);
    }
    return body.data;
  }

  async function adminPost(path) {
    if (!state.token) {
      showMessage('An admin token is needed: paste it in the field at the top.', true);
      return;
    }
    let response;
    let body = null;
    try {
      response = await fetch(path, { method: 'POST', headers: { Authorization: `Bearer ${state.token}` } });
      try { body = await response.json(); } catch (e) { body = null; }
    } catch (e) {
      showMessage(`The orchestrator did not answer: ${e.message}`, true);
      return;
    }
    const text = (body && body.message) || `${response.status} ${response.statusText}`;
    if (response.status === 401) showMessage(`Token refused (401): ${text}`, true);
    else if (!response.ok || (body && body.success === false)) showMessage(`Refused (${response.status}): ${text}`, true);
    else showMessage(text, false);
    tick();
  }

  function showMessage(text, isError) {
    state.message = { text, isError };
    const node = byId('action-message');
    node.hidden = false;
    node.className = isError ? 'message bad' : 'message';
    node.textContent = text;
  }

  function jobsUrl() {
    const params = new URLSearchParams({ limit: '100' });
    if (state.jobsStatus === ATTENTION) params.append('needs_attention', 'true');
    else if (state.jobsStatus) params.append('status', state.jobsStatus);
    if (state.jobsType) params.append('job_type', state.jobsType);
    return `/api/v1/dashboard/jobs?${params}`;
  }

  function adminState() {
    const ov = state.overview;
    if (ov && !ov.admin_enabled) return { can: false, why: 'admin routes are off', note: 'Admin actions are off: start the orchestrator with --admin-enabled and --admin-token.' };
    if (!state.token) return { can: false, why: 'token needed', note: 'Read-only: paste the admin token at the top to enable these actions.' };
    return { can: true, why: '', note: '' };
  }

  // ---------------------------------------------------------------------------------------------
  // Polling

  let timer = null;
  let inflight = false;
  let again = false;

  async function refresh() {
    try {
      const [overview, jobs] = await Promise.all([getJson('/api/v1/dashboard/overview'), getJson(jobsUrl())]);
      state.overview = overview;
      state.jobs = jobs.jobs;
      addSample(overview);
      state.pollError = null;
      state.lastOk = Date.now();
    } catch (e) {
      state.pollError = e.message;
    }
    if (Date.now() - state.costAt >= COST_POLL_MS) {
      state.costAt = Date.now();
      try {
        state.cost = await getJson(`/cost?limit=${COST_BATCHES}`);
        state.costError = null;
      } catch (e) {
        state.costError = e.message;
      }
    }
    if (state.block !== null) {
      try {
        state.blockView = await getJson(`/api/v1/dashboard/blocks/${state.block}`);
        state.blockError = null;
      } catch (e) {
        state.blockView = null;
        state.blockError = e.message;
      }
    }
    render();
  }

  async function tick() {
    if (inflight) { again = true; return; }
    inflight = true;
    clearTimeout(timer);
    try {
      await refresh();
    } finally {
      inflight = false;
      if (again) { again = false; tick(); } else { timer = setTimeout(tick, POLL_MS); }
    }
  }

  function addSample(ov) {
    const last = state.samples[state.samples.length - 1];
    if (last && last.t === ov.now) return;
    state.samples.push({ t: ov.now, head: ov.head, settled: ov.settled });
    while (state.samples.length && state.samples[0].t < ov.now - SAMPLE_WINDOW_S) state.samples.shift();
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering

  function render() {
    renderLive();
    const ov = state.overview;
    if (ov) {
      renderErrors(ov);
      renderPipeline(ov);
      renderOpenBatches(ov);
      renderChart(ov);
      renderPosting(ov);
      renderRecent(ov);
      renderCounts(ov);
      renderPauses(ov);
    }
    renderCost();
    renderToken();
    renderActions();
    renderJobs();
    renderBlock();
  }

  function renderLive() {
    const dot = byId('live-dot');
    const text = byId('live-status');
    if (state.pollError) {
      dot.className = 'dot bad';
      text.textContent = `no answer: ${state.pollError}`;
    } else if (state.lastOk) {
      dot.className = 'dot ok';
      text.textContent = `live · updated ${new Date(state.lastOk).toLocaleTimeString('en-GB', { hour12: false })}`;
    }
  }

  // The banner: what the orchestrator cannot reach, triggers that keep failing, chain positions that contradict
  // each other; one line each.
  function renderErrors(ov) {
    if (!changed('errors', ov.errors)) return;
    const node = replace('errors', ov.errors.map((e) => h('div', { class: 'error-line' }, e)));
    node.hidden = ov.errors.length === 0;
  }

  function stageCard(id, label, value, sub, fraction) {
    const bar = h('div');
    if (fraction !== null) bar.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    return h('div', { class: 'stage', id: `card-${id}` },
      h('div', { class: 'label' }, label),
      h('div', { class: 'value', id, dataset: { value: value === null || value === undefined ? '' : String(value) } }, block(value)),
      h('div', { class: 'sub' }, sub),
      h('div', { class: 'progress' }, bar));
  }

  const STAGE_LABELS = {
    snos: 'SNOS through',
    proof: 'Proven through',
    aggregation: 'Aggregated through',
    registration: 'Verified on L2 through',
    da: 'DA encoded through',
  };

  function renderPipeline(ov) {
    const data = { head: ov.head, settled: ov.settled, stages: ov.stages, lag: ov.lag };
    if (!changed('pipeline', data)) return;
    const head = ov.head;
    const frac = (n) => (head === null || n === null || n === undefined ? 0 : (n + 1) / (head + 1));
    const stageSub = (s) => {
      const parts = [];
      if (s.highest !== null && s.highest !== s.through) parts.push(`highest ${s.highest}`);
      if (s.first_open) parts.push(`next #${s.first_open.internal_id} ${s.first_open.status}`);
      if (parts.length) return parts.join(' · ');
      return s.through === null ? 'nothing yet' : 'all done';
    };
    const arrow = () => h('div', { class: 'arrow', 'aria-hidden': 'true' }, '→');
    const lag = ov.lag;
    // The colour comes with the overview (domain/lag.py): green within two batches and the batch time plus
    // the usual proving and settlement time, amber beyond, red beyond twice either.
    const lagValue = h('div', {
      class: `value lag-${lag.level}`, id: 'lag-blocks',
      dataset: { value: lag.blocks === null ? '' : String(lag.blocks), level: lag.level },
      title: `normal: up to ${num(lag.normal_blocks)} blocks behind and ${duration(lag.normal_seconds)} of waiting; red beyond twice either`,
    }, lag.blocks === null ? '—' : `${num(lag.blocks)} block${lag.blocks === 1 ? '' : 's'}`);
    let lagSub;
    if (lag.blocks === null) lagSub = ov.head !== null && ov.settled !== null && ov.settled > ov.head ? 'settled block above the chain head: see above' : 'unknown';
    else if (lag.blocks === 0) lagSub = 'every block is settled';
    else lagSub = `oldest unsettled block waiting ${duration(lag.seconds)}`;
    replace('pipeline',
      stageCard('head-block', 'Chain head', head, 'sequencer', head === null ? 0 : 1), arrow(),
      // The layer's stages in order (L2: aggregation; L3: registration on the L2 and DA), settlement last.
      ...Object.entries(ov.stages).filter(([name]) => name !== 'settlement').flatMap(([name, st]) => [
        stageCard(`stage-${name}`, STAGE_LABELS[name] || `${name} through`, st.through, stageSub(st), frac(st.through)), arrow()]),
      stageCard('settled-block', 'Settled through', ov.settled, inFlightText(ov.settlements_in_flight), frac(ov.settled)),
      h('div', { class: 'arrow' }),
      h('div', { class: `stage lag lag-${lag.level}`, id: 'card-lag' },
        h('div', { class: 'label' }, 'Settlement lag'),
        lagValue,
        h('div', { class: 'sub', id: 'lag-seconds' }, lagSub)));
  }

  // Settlement transactions sent one after another without waiting for the previous one to be final
  // (--max-settlements-in-flight): how many StateTransition jobs are under way, of how many allowed.
  function inFlightText(f) {
    if (!f) return 'on the settlement layer';
    return `on the settlement layer · ${num(f.count)} of ${num(f.limit)} in flight`;
  }

  function fillRow(label, used, limit, text) {
    const ratio = limit > 0 ? used / limit : 0;
    const amount = limit >= 1e6 ? compact : num;
    const bar = h('div', { class: ratio >= 1 ? 'full' : ratio >= 0.8 ? 'high' : '' });
    bar.style.width = `${Math.min(1, ratio) * 100}%`;
    return h('div', { class: 'fill' },
      h('span', null, label),
      h('div', { class: 'bar' }, bar),
      h('span', { class: 'num' }, text || `${amount(used)} / ${amount(limit)} (${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)}%)`));
  }

  function renderOpenBatches(ov) {
    const open = ov.open_batches;
    if (!changed('open', { open, head: ov.head, batched: ov.batched_through, failing: ov.batching_failing })) return;
    const parts = [];
    for (const b of open.aggregator) {
      parts.push(h('div', { class: 'batch', dataset: { kind: 'aggregator', index: b.index } },
        h('div', { class: 'title' }, `Aggregator batch ${b.index} · blocks ${range(b.start_block, b.end_block)} · `, pill(b.status)),
        fillRow('Blocks', b.blocks, b.max_blocks),
        fillRow('Blob felts', b.blob_felts, b.max_blob_felts),
        fillRow('Aggregator input', b.input_size, b.max_input_size),
        b.weights.map((w) => fillRow(WEIGHT_LABELS[w.name] || w.name, w.used, w.limit)),
        fillRow('Age', b.age_s, b.max_age_s, `${duration(b.age_s)} / ${duration(b.max_age_s)}`)));
    }
    for (const b of open.snos) {
      const heaviest = [...b.weights].sort((x, y) => y.used / y.limit - x.used / x.limit).slice(0, 3);
      parts.push(h('div', { class: 'batch', dataset: { kind: 'snos', index: b.index } },
        h('div', { class: 'title' }, `SNOS batch ${b.index} · blocks ${range(b.start_block, b.end_block)} · `, pill(b.status)),
        fillRow('Blocks', b.blocks, b.max_blocks),
        heaviest.map((w) => fillRow(WEIGHT_LABELS[w.name] || w.name, w.used, w.limit)),
        fillRow('Age', b.age_s, b.max_age_s, `${duration(b.age_s)} / ${duration(b.max_age_s)}`)));
    }
    if (!parts.length) parts.push(h('div', { class: ov.batching_failing ? 'message bad' : 'muted', id: 'no-open-batch' }, noOpenBatch(ov)));
    const node = replace('open-batches', parts);
    node.className = '';
  }

  function noOpenBatch(ov) {
    const batched = ov.batched_through;
    const failing = ov.batching_failing ? ' Batching is failing: see above.' : '';
    if (ov.head === null) return `No open batch; the chain head is unknown.${failing}`;
    if (batched === null || batched < ov.head) {
      const first = batched === null ? 0 : batched + 1;
      return `No open batch: blocks ${range(first, ov.head)} are not batched yet.${failing}`;
    }
    return `No open batch: every block up to the head is in a closed batch.${failing}`;
  }

  function renderRecent(ov) {
    const recent = ov.recent_batches;
    if (!changed('recent', { recent, now: Math.floor(ov.now / 5) })) return;
    replace('recent-aggregator', recent.aggregator.length === 0 ? h('div', { class: 'muted small' }, 'none yet') :
      h('div', { class: 'scroll' }, h('table', null,
        h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Blocks'), h('th', null, 'Status'),
          h('th', { class: 'num' }, 'Blob felts'), h('th', { class: 'num' }, 'Fill'), h('th', null, 'Updated'))),
        h('tbody', null, recent.aggregator.map((b) => h('tr', null,
          h('td', null, b.index), h('td', null, range(b.start_block, b.end_block)), h('td', null, pill(b.status)),
          h('td', { class: 'num' }, num(b.blob_felts)),
          h('td', { class: 'num' }, `${Math.round(100 * Math.max(b.blocks / b.max_blocks, b.blob_felts / b.max_blob_felts))}%`),
          h('td', { class: 'small muted' }, ago(b.updated_at, ov.now))))))));
    replace('recent-snos', recent.snos.length === 0 ? h('div', { class: 'muted small' }, 'none yet') :
      h('div', { class: 'scroll' }, h('table', null,
        h('thead', null, h('tr', null, h('th', null, '#'), h('th', null, 'Blocks'), h('th', null, 'Aggregator'),
          h('th', null, 'Status'), h('th', null, 'Updated'))),
        h('tbody', null, recent.snos.map((b) => h('tr', null,
          h('td', null, b.index), h('td', null, range(b.start_block, b.end_block)),
          h('td', null, b.aggregator_batch_index === null ? '—' : b.aggregator_batch_index), h('td', null, pill(b.status)),
          h('td', { class: 'small muted' }, ago(b.updated_at, ov.now))))))));
  }

  // A small chart: the chain head and the settled block over time (left axis), and per settlement its fee
  // when the settlement layer records one, else its number of blocks (bars, right axis).
  function niceStep(raw) {
    if (raw <= 1) return 1;
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function renderChart(ov) {
    const settlements = ov.settlements;
    const samples = state.samples;
    const W = 640; const H = 230;
    const pad = { l: 52, r: 58, t: 12, b: 26 };
    const now = ov.now;
    const times = [now, ...samples.map((s) => s.t), ...settlements.map((s) => s.at)];
    const t1 = now;
    const t0 = Math.min(Math.min(...times) - 2, t1 - MIN_CHART_SPAN_S);
    const blocks = [];
    for (const s of samples) { if (s.head !== null) blocks.push(s.head); if (s.settled !== null) blocks.push(s.settled); }
    for (const s of settlements) blocks.push(s.start_block - 1, s.end_block);
    const withFee = settlements.filter((s) => s.fee_wei !== null);
    const useFee = withFee.length > 0;
    const barValue = (s) => (useFee ? (s.fee_wei || 0) : s.end_block - s.start_block + 1);
    const barMax = Math.max(1, ...settlements.map(barValue));
    const lowest = blocks.length ? Math.max(0, Math.min(...blocks)) : 0;
    const highest = blocks.length ? Math.max(...blocks) : 1;
    const tick = niceStep((highest - lowest) / 4);
    const b0 = Math.floor(lowest / tick) * tick;
    const b1 = Math.max(b0 + 4 * tick, Math.ceil(highest / tick) * tick);
    const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r);
    const y = (b) => H - pad.b - ((b - b0) / (b1 - b0)) * (H - pad.t - pad.b);
    const yBar = (v) => H - pad.b - (v / barMax) * (H - pad.t - pad.b) * 0.6;

    const parts = [];
    for (let b = b0; b <= b1; b += tick) {
      parts.push(svg('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(b), y2: y(b) }));
      parts.push(svg('text', { class: 'tick', x: pad.l - 6, y: y(b) + 3, 'text-anchor': 'end' }, num(Math.round(b))));
    }
    for (let i = 0; i <= 3; i++) {
      const t = t0 + ((t1 - t0) * i) / 3;
      parts.push(svg('text', { class: 'tick', x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 3 ? 'end' : 'middle' }, clock(t)));
    }
    parts.push(svg('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
    parts.push(svg('text', { class: 'tick', x: W - pad.r + 6, y: pad.t + 8 }, useFee ? wei(barMax) : `${num(barMax)} blk`));
    parts.push(svg('text', { class: 'tick', x: W - pad.r + 6, y: H - pad.b }, '0'));

    const barWidth = Math.max(3, Math.min(14, (W - pad.l - pad.r) / Math.max(20, settlements.length * 2)));
    for (const s of settlements) {
      const top = yBar(barValue(s));
      parts.push(svg('rect', { class: 'bar', x: x(s.at) - barWidth / 2, y: top, width: barWidth, height: H - pad.b - top },
        svg('title', null, `batch ${s.batch}: blocks ${range(s.start_block, s.end_block)}, ${useFee ? wei(s.fee_wei) : `${s.end_block - s.start_block + 1} blocks`}, ${clock(s.at)}`)));
    }
    const headPoints = samples.filter((s) => s.head !== null).map((s) => `${x(s.t).toFixed(1)},${y(s.head).toFixed(1)}`);
    if (headPoints.length) parts.push(svg('polyline', { class: 'head', points: headPoints.join(' ') }));
    // The settled line steps up at each settlement, then follows what the page saw.
    const settledPts = [];
    for (const s of settlements) settledPts.push([s.at, s.end_block]);
    for (const s of samples) if (s.settled !== null) settledPts.push([s.t, s.settled]);
    settledPts.sort((a, b) => a[0] - b[0]);
    const step = [];
    let level = null;
    for (const [t, b] of settledPts) {
      if (level !== null) step.push(`${x(t).toFixed(1)},${y(level).toFixed(1)}`);
      level = level === null ? b : Math.max(level, b);
      step.push(`${x(t).toFixed(1)},${y(level).toFixed(1)}`);
    }
    if (level !== null) step.push(`${x(t1).toFixed(1)},${y(level).toFixed(1)}`);
    if (step.length) parts.push(svg('polyline', { class: 'settled', points: step.join(' ') }));
    for (const s of settlements) parts.push(svg('circle', { class: 'dotmark', cx: x(s.at), cy: y(s.end_block), r: 2.5 }));

    replace('chart',
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Chain head and settled block over time' }, parts),
      h('div', { class: 'legend' }, h('span', { class: 'l-head' }, 'chain head'), h('span', { class: 'l-settled' }, 'settled block'),
        h('span', { class: 'l-bar' }, useFee ? 'fee per settlement' : 'blocks per settlement (no fees recorded)')));

    let rate = '—';
    if (settlements.length >= 2) {
      const first = settlements[0];
      const last = settlements[settlements.length - 1];
      const span = last.at - first.at;
      const settledBlocks = last.end_block - first.end_block;
      if (span > 0) rate = `${(60 * settledBlocks / span).toFixed(1)} blocks/min`;
    }
    byId('chart-summary').textContent = `Throughput ${rate} over the last ${settlements.length} settlements · ${feeSummary(ov.fees)}`;
  }

  // Blob-fee-aware posting (--settlement-deadline-seconds): whether the next proven batch waits for lower L1 fees,
  // why, and the time left to its deadline. Hidden without a deadline (settlements go at once).
  function renderPosting(ov) {
    const p = ov.posting;
    if (!changed('posting', p)) return;
    const node = byId('posting');
    node.hidden = !p;
    if (!p) return;
    const left = p.seconds_to_deadline;
    const deadline = left === null ? '' : left >= 0 ? ` · deadline in ${duration(left)}` : ` · deadline missed by ${duration(-left)}`;
    const others = p.waiting_batches > 1 ? ` (${p.waiting_batches} batches proven)` : '';
    node.className = `small ${p.waiting ? (left !== null && left < 0 ? 'message bad' : 'message') : 'muted'}`;
    node.dataset.waiting = String(p.waiting);
    node.dataset.code = p.code;
    node.textContent = p.waiting
      ? `Batch ${p.batch} waits for lower L1 fees${others}: ${p.reason}`
      : `Batch ${p.batch} posted (${p.code.replace(/_/g, ' ')}): base fee ${wei(p.base_fee_wei)}, blob base fee ${wei(p.blob_base_fee_wei)}${deadline}`;
  }

  // Cost at a glance: the fees in the settlement layer's coin, per settled block, and how full the blobs were.
  function feeSummary(fees) {
    const parts = [];
    if (fees.with_fee > 0) {
      const some = fees.with_fee === fees.window ? '' : ` (${fees.with_fee} of them with a recorded fee)`;
      parts.push(`fees ${coin(fees.total_wei, fees.unit)} for the last ${fees.window} settlements${some}`);
      if (fees.per_block_wei !== null) parts.push(`${coin(fees.per_block_wei, fees.unit)} per block`);
    } else {
      parts.push(`no fee recorded by the settlement layer for the last ${fees.window} settlements`);
    }
    if (fees.blob_fill !== null) parts.push(`blob fill ${percent(fees.blob_fill)} (${fees.blob_batches} batches)`);
    return parts.join(' · ');
  }

  // The cost ledger (GET /cost): the sums, the fee per block of each settled batch (bars) and the running
  // fee per block (line), and the latest batches' lines.
  function renderCost() {
    if (!changed('cost', { cost: state.cost, error: state.costError })) return;
    if (state.costError && !state.cost) { replace('cost-totals', `cost ledger unavailable: ${state.costError}`); return; }
    const cost = state.cost;
    if (!cost) return;
    const t = cost.totals;
    const unit = cost.unit;
    const totals = [
      `${t.settled} of ${t.batches} ${cost.batch_kind} batches settled`,
      `${num(t.blocks)} blocks`,
      `fee ${coin(t.fee_wei, unit)}`,
      `${coin(t.fee_per_block_wei, unit)} per block`,
    ];
    if (t.execution_fee_wei !== null) totals.push(`execution ${coin(t.execution_fee_wei, unit)} (${num(t.gas_used)} gas)`);
    if (t.blob_fee_wei !== null) totals.push(`blobs ${coin(t.blob_fee_wei, unit)} (${num(t.blobs)} blobs, ${num(t.blob_gas_used)} blob gas, fill ${percent(t.fill)})`);
    totals.push(`${num(t.replacements)} replacements`);
    if (t.mean_seconds_to_settle !== null) totals.push(`first block to settled ${duration(t.mean_seconds_to_settle)} on average`);
    if (t.bytes_stored !== null) totals.push(`${compact(t.bytes_stored)}B stored`);
    replace('cost-totals', h('span', { id: 'cost-summary' }, totals.join(' · ')), state.costError ? h('span', { class: 'bad' }, ` (last refresh failed: ${state.costError})`) : null);
    replace('cost-chart', costChart(cost.series, unit));
    const rows = cost.batches.slice(-COST_ROWS).reverse();
    const cumulative = new Map(cost.series.map((p) => [p.index, p.cumulative_fee_wei]));
    replace('cost-table', rows.length === 0 ? h('div', { class: 'muted small' }, 'no batch yet') :
      h('div', { class: 'scroll' }, h('table', { id: 'cost-rows' },
        h('thead', null, h('tr', null, ...['#', 'Blocks', 'Blobs', 'Fill', 'Execution fee', 'Blob fee', 'Fee', 'Per block', 'Cumulative', 'Tries', 'To settle', 'Stored'].map(
          (label, i) => h('th', { class: i >= 2 ? 'num' : null }, label)))),
        h('tbody', null, rows.map((b) => h('tr', { dataset: { batch: String(b.index) } },
          h('td', null, b.index), h('td', null, range(b.start_block, b.end_block)),
          h('td', { class: 'num' }, block(b.blobs)), h('td', { class: 'num' }, percent(b.fill)),
          h('td', { class: 'num', dataset: { wei: b.execution_fee_wei ?? '' } }, coin(b.execution_fee_wei, unit)),
          h('td', { class: 'num', dataset: { wei: b.blob_fee_wei ?? '' } }, coin(b.blob_fee_wei, unit)),
          h('td', { class: 'num', dataset: { wei: b.fee_wei ?? '' } }, b.settled ? coin(b.fee_wei, unit) : 'not settled'),
          h('td', { class: 'num' }, coin(b.fee_per_block_wei, unit)),
          h('td', { class: 'num' }, coin(cumulative.get(b.index) ?? null, unit)),
          h('td', { class: 'num' }, b.attempts), h('td', { class: 'num' }, duration(b.seconds_to_settle)),
          h('td', { class: 'num' }, b.bytes_stored === null ? '—' : `${compact(b.bytes_stored)}B`)))))));
  }

  function costChart(series, unit) {
    if (series.length === 0) return h('div', { class: 'muted small' }, 'no settled batch with a recorded fee yet');
    const W = 1200; const H = 150;
    const pad = { l: 8, r: 8, t: 10, b: 20 };
    const top = Math.max(1, ...series.map((p) => Math.max(p.fee_per_block_wei, p.cumulative_fee_per_block_wei)));
    const slot = (W - pad.l - pad.r) / series.length;
    const y = (v) => H - pad.b - (v / top) * (H - pad.t - pad.b);
    const parts = [svg('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b })];
    series.forEach((p, i) => {
      const x = pad.l + i * slot;
      parts.push(svg('rect', { class: 'bar', x: x + slot * 0.15, y: y(p.fee_per_block_wei), width: Math.max(1, slot * 0.7), height: H - pad.b - y(p.fee_per_block_wei) },
        svg('title', null, `batch ${p.index} (to block ${p.end_block}): ${coin(p.fee_per_block_wei, unit)} per block, ${coin(p.fee_wei, unit)} in all, settled ${stamp(p.settled_at)}`)));
    });
    const line = series.map((p, i) => `${(pad.l + (i + 0.5) * slot).toFixed(1)},${y(p.cumulative_fee_per_block_wei).toFixed(1)}`);
    parts.push(svg('polyline', { class: 'settled', points: line.join(' ') }));
    parts.push(svg('text', { class: 'tick', x: pad.l, y: H - 6 }, `batch ${series[0].index}`));
    parts.push(svg('text', { class: 'tick', x: W - pad.r, y: H - 6, 'text-anchor': 'end' }, `batch ${series[series.length - 1].index}`));
    parts.push(svg('text', { class: 'tick', x: pad.l + 2, y: pad.t + 8 }, `${coin(top, unit)} per block`));
    return [
      svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Fee per block of each settled batch, and cumulative' }, parts),
      h('div', { class: 'legend' }, h('span', { class: 'l-bar' }, 'fee per block of the batch'), h('span', { class: 'l-settled' }, 'cumulative fee per block')),
    ];
  }

  function fillSelect(select, values, current, anyLabel, extra) {
    if (!select.options.length) {
      select.append(h('option', { value: '' }, anyLabel), ...(extra || []).map(([v, label]) => h('option', { value: v }, label)),
        ...values.map((v) => h('option', { value: v }, v)));
    }
    select.value = current;
  }

  function renderCounts(ov) {
    const counts = ov.job_counts;
    const attention = ov.attention;
    if (!changed('counts', { counts, attention, s: state.jobsStatus, t: state.jobsType })) return;
    const types = TYPES.filter((t) => counts[t]);
    const statuses = STATUSES.filter((s) => types.some((t) => counts[t][s]) || s === 'Failed');
    if (!types.length) { replace('job-counts', h('div', { class: 'muted small' }, 'No job yet.')); return; }
    const detail = [...Object.entries(attention.by_status).filter(([, n]) => n > 0).map(([s, n]) => `${num(n)} ${s}`),
      attention.waiting ? `${num(attention.waiting)} waiting on an outage` : null].filter(Boolean).join(', ');
    const summary = h('div', { class: `attention${attention.total ? ' some' : ''}`, id: 'attention', dataset: { total: attention.total } },
      h('button', { type: 'button', onclick: () => setFilter(ATTENTION, '') }, `Needs attention: ${num(attention.total)}`),
      h('span', { class: 'muted small' }, attention.total ? ` ${detail}` : ' nothing is stuck or waiting'));
    const cell = (t, s) => {
      const n = (counts[t] || {})[s] || 0;
      const selected = state.jobsStatus === s && (state.jobsType === t || state.jobsType === '');
      return h('td', { class: `num ${s}${n === 0 ? ' zero' : ''}${selected ? ' selected' : ''}` },
        n === 0 ? '0' : h('button', { type: 'button', title: `List ${t} jobs in ${s}`, dataset: { type: t, status: s }, onclick: () => setFilter(s, t) }, num(n)));
    };
    replace('job-counts', summary, h('div', { class: 'scroll' }, h('table', { class: 'counts', id: 'job-counts-table' },
      h('thead', null, h('tr', null, h('th', null, 'Type'), statuses.map((s) => h('th', { class: 'num' }, s)))),
      h('tbody', null, types.map((t) => h('tr', { dataset: { type: t } }, h('td', null, t), statuses.map((s) => cell(t, s))))))));
  }

  function setFilter(status, type) {
    state.jobsStatus = status;
    state.jobsType = type;
    byId('jobs-status').value = status;
    byId('jobs-type').value = type;
    tick();
  }

  function renderToken() {
    const ov = state.overview;
    const text = ov && !ov.admin_enabled ? 'admin routes are off'
      : state.token ? 'token set (this tab only)' : 'read-only';
    byId('token-state').textContent = text;
    byId('token-clear').disabled = !state.token;
  }

  function renderActions() {
    const admin = adminState();
    if (!changed('actions', { admin, armed: state.armed })) return;
    replace('admin-actions',
      ADMIN_ACTIONS.map((a) => {
        const armed = state.armed === a.path;
        return h('button', {
          type: 'button', class: armed ? 'primary' : '', disabled: !admin.can, dataset: { action: a.path },
          title: admin.can ? 'Click twice to confirm' : admin.note,
          onclick: () => {
            if (!armed) { state.armed = a.path; renderActions(); setTimeout(() => { if (state.armed === a.path) { state.armed = null; renderActions(); } }, 4000); return; }
            state.armed = null;
            renderActions();
            adminPost(a.path);
          },
        }, armed ? `Confirm: ${a.label}` : admin.can ? a.label : `${a.label} (${admin.why})`);
      }),
      admin.note ? h('span', { class: 'note', id: 'admin-note' }, admin.note) : null);
  }

  const STAGES = ['batching', 'proving', 'settlement'];

  function pausedSince(p) {
    return new Date(p.since * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function renderPauses(ov) {
    const admin = adminState();
    const paused = (ov && ov.paused) || {};
    if (!changed('pauses', { paused, admin, armed: state.armed })) return;
    replace('pauses', ...STAGES.map((stage) => {
      const p = paused[stage];
      const path = p ? `/resume/${stage}` : `/pause/${stage}`;
      const armed = state.armed === path;
      const label = p ? `Resume ${stage}` : `Pause ${stage}`;
      const button = h('button', {
        type: 'button', class: armed ? 'primary' : '', disabled: !admin.can, dataset: { stage, action: path },
        title: admin.can ? 'Click twice to confirm' : admin.note,
        onclick: () => {
          if (!armed) { state.armed = path; renderPauses(state.overview); setTimeout(() => { if (state.armed === path) { state.armed = null; renderPauses(state.overview); } }, 4000); return; }
          state.armed = null;
          const reason = byId('pause-reason').value.trim();
          const query = new URLSearchParams({ by: 'dashboard' });
          if (!p && reason) query.append('reason', reason);
          adminPost(`${path}?${query}`);
        },
      }, armed ? `Confirm: ${label}` : admin.can ? label : `${label} (${admin.why})`);
      const says = p ? `${stage}: paused by ${p.by} since ${pausedSince(p)}: ${p.reason}` : `${stage}: running`;
      return h('div', { class: p ? 'pause paused' : 'pause', dataset: { stage } }, h('span', {}, says), ' ', button);
    }));
  }

  function retryButton(job) {
    const admin = adminState();
    return h('button', {
      type: 'button', class: 'retry-button', disabled: !admin.can, dataset: { jobId: job.id },
      title: admin.can ? `Retry ${job.job_type} #${job.internal_id}` : admin.note,
      onclick: () => adminPost(`/admin/jobs/${encodeURIComponent(job.id)}/retry`),
    }, admin.can ? 'Retry' : `Retry (${admin.why})`);
  }

  function attempts(job) {
    const a = job.attempts;
    const parts = [`process ${a.process}`];
    if (a.process_retry) parts.push(`${a.process_retry} operator retr${a.process_retry === 1 ? 'y' : 'ies'}`);
    parts.push(`verify ${a.verification}`);
    return parts.join(' · ');
  }

  function failureCell(job) {
    if (!job.failure_reason && !job.previous_failure_reasons.length) return h('td', { class: 'muted' }, '—');
    return h('td', null,
      job.failure_reason ? h('div', { class: 'failure' }, job.failure_reason) : null,
      job.previous_failure_reasons.length
        ? h('ol', { class: 'history', title: 'Earlier failures, oldest first' }, job.previous_failure_reasons.map((r) => h('li', null, r)))
        : null);
  }

  function renderJobs() {
    const now = state.overview ? state.overview.now : Date.now() / 1000;
    if (!changed('jobs', { jobs: state.jobs, admin: adminState(), now: Math.floor(now / 5) })) return;
    if (!state.jobs.length) {
      const what = state.jobsType ? `${state.jobsType} job` : 'job';
      const text = state.jobsStatus === ATTENTION
        ? `No ${what} needs attention (Failed, VerificationTimeout, VerificationFailed, or waiting on an outage).`
        : `No ${what} in ${state.jobsStatus || 'any status'}.`;
      replace('jobs-list', h('div', { class: 'muted small', id: 'jobs-empty' }, text));
      return;
    }
    replace('jobs-list', h('div', { class: 'scroll' }, h('table', { id: 'jobs-table' },
      h('thead', null, h('tr', null, ['Type', '#', 'Blocks', 'Status', 'Attempts', 'Updated', 'Failure', ''].map((c) => h('th', null, c)))),
      h('tbody', null, state.jobs.map((j) => h('tr', { dataset: { jobId: j.id, jobType: j.job_type, status: j.status } },
        h('td', null, j.job_type), h('td', null, j.internal_id),
        h('td', null, j.start_block === null ? '—' : h('button', { type: 'button', class: 'linklike', onclick: () => showBlock(j.start_block) }, range(j.start_block, j.end_block))),
        h('td', null, pill(j.status), j.waiting_since ? h('span', { class: 'pill waiting', title: `since ${stamp(j.waiting_since)}` }, 'waiting on an outage') : null),
        h('td', { class: 'small' }, attempts(j)),
        h('td', { class: 'small muted' }, ago(j.updated_at, now)), failureCell(j),
        h('td', null, j.status === 'Failed' ? retryButton(j) : null)))))));
  }

  function batchSummary(id, label, b, extra) {
    if (!b) return h('div', { id }, h('div', { class: 'k' }, label), h('div', { class: 'v muted' }, 'not batched yet'));
    return h('div', { id, dataset: { index: b.index } },
      h('div', { class: 'k' }, label),
      h('div', { class: 'v' }, `#${b.index} · blocks ${range(b.start_block, b.end_block)} · `, pill(b.status)),
      extra ? h('div', { class: 'v small muted' }, extra) : null);
  }

  function renderBlock() {
    if (state.block === null) return;
    const view = state.blockView;
    if (!changed('block', { view, error: state.blockError, admin: adminState() })) return;
    if (!view) {
      replace('block-view', h('div', { class: 'message bad', id: 'block-error' }, state.blockError || 'loading…')).className = '';
      return;
    }
    const now = state.overview ? state.overview.now : Date.now() / 1000;
    const agg = view.aggregator_batch;
    const jobsTable = view.jobs.length === 0 ? h('div', { class: 'muted small' }, 'No job for this block yet.') :
      h('div', { class: 'scroll' }, h('table', { id: 'block-jobs' },
        h('thead', null, h('tr', null, ['Job', '#', 'Status', 'Attempts', 'Created', 'Processing', 'Verification', 'Failure history', ''].map((c) => h('th', null, c)))),
        h('tbody', null, view.jobs.map((j) => h('tr', { dataset: { jobId: j.id, jobType: j.job_type, status: j.status } },
          h('td', null, j.job_type), h('td', null, j.internal_id), h('td', null, pill(j.status)),
          h('td', { class: 'small' }, attempts(j)),
          h('td', { class: 'small' }, stamp(j.created_at)),
          h('td', { class: 'small' }, `${clock(j.timestamps.process_started_at)} → ${clock(j.timestamps.process_completed_at)}`),
          h('td', { class: 'small' }, `${clock(j.timestamps.verification_started_at)} → ${clock(j.timestamps.verification_completed_at)}`),
          failureCell(j),
          h('td', null, j.status === 'Failed' ? retryButton(j) : null))))));
    const txs = view.settlement_txs.length === 0
      ? h('div', { class: 'muted small', id: 'block-no-settlement' }, 'No settlement transaction yet.')
      : view.settlement_txs.map((tx) => h('div', { class: 'tx', dataset: { batch: tx.batch } },
        h('div', null, h('strong', null, `Settlement of batch ${tx.batch}`), ` (blocks ${range(tx.start_block, tx.end_block)}) `, pill(tx.status),
          tx.settled_at ? h('span', { class: 'muted small' }, ` settled ${stamp(tx.settled_at)}`) : null),
        h('div', { class: 'small' }, 'tx ', h('code', { class: 'hash settlement-tx-hash' }, tx.tx_hash || '— (not sent yet)'),
          tx.tx_nonce === null ? null : ` · nonce ${tx.tx_nonce}`, ` · fee ${wei(tx.fee_wei)}`),
        tx.attempts.length === 0 ? null : h('table', { class: 'small' },
          h('thead', null, h('tr', null, ['Attempt', 'Tx hash', 'Nonce', 'Gas ×', 'Status', 'Fee', 'Error'].map((c) => h('th', null, c)))),
          h('tbody', null, tx.attempts.map((a) => h('tr', null,
            h('td', null, a.attempt_no), h('td', null, h('code', { title: a.tx_hash || '' }, shortHash(a.tx_hash))), h('td', null, a.nonce === null || a.nonce === undefined ? '—' : a.nonce),
            h('td', null, a.gas_multiplier || '—'), h('td', null, a.status ? pill(a.status) : '—'), h('td', null, wei(a.fee_wei)),
            h('td', { class: 'failure' }, a.error || '')))))));
    const node = replace('block-view',
      h('div', { class: 'block-head' }, h('span', { class: 'title', id: 'block-title' }, `Block ${view.block_number}`),
        view.is_settled ? h('span', { class: 'pill settled', id: 'block-settled' }, 'settled') : h('span', { class: 'pill unsettled', id: 'block-settled' }, 'not settled yet'),
        h('span', { class: 'muted small' }, `head ${block(view.head)} · settled through ${block(view.settled)}`)),
      h('div', { class: 'kv' },
        batchSummary('block-snos-batch', 'SNOS batch', view.snos_batch, view.snos_batch ? `${view.snos_batch.blocks} of at most ${view.snos_batch.max_blocks} blocks · created ${ago(view.snos_batch.created_at, now)}` : null),
        batchSummary('block-aggregator-batch', 'Aggregator batch', agg, agg ? `${num(agg.blob_felts)} / ${num(agg.max_blob_felts)} blob felts · ${agg.blocks} of at most ${agg.max_blocks} blocks` : null)),
      h('h3', null, 'Jobs'), jobsTable,
      h('h3', null, 'Settlement'), h('div', { id: 'block-settlement' }, txs),
      view.errors.length ? h('div', { class: 'errors small' }, view.errors.join(' · ')) : null);
    node.className = '';
  }

  function showBlock(n) {
    state.block = n;
    state.blockView = null;
    state.blockError = null;
    state.rendered.block = null;
    byId('block-input').value = String(n);
    if (location.hash !== `#block=${n}`) history.replaceState(null, '', `#block=${n}`);
    replace('block-view', h('div', { class: 'muted small' }, `loading block ${n}…`));
    tick();
  }

  // ---------------------------------------------------------------------------------------------
  // Start

  function start() {
    fillSelect(byId('jobs-status'), STATUSES, state.jobsStatus, 'any status', [[ATTENTION, ATTENTION_LABEL]]);
    fillSelect(byId('jobs-type'), TYPES, state.jobsType, 'any type');
    byId('jobs-status').addEventListener('change', (e) => setFilter(e.target.value, state.jobsType));
    byId('jobs-type').addEventListener('change', (e) => setFilter(state.jobsStatus, e.target.value));
    byId('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = byId('admin-token');
      const token = input.value.trim();
      input.value = '';
      writeToken(token);
      state.message = null;
      byId('action-message').hidden = true;
      render();
    });
    byId('token-clear').addEventListener('click', () => { writeToken(''); render(); });
    byId('block-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const raw = byId('block-input').value.trim();
      if (!/^[0-9]+$/.test(raw)) { state.block = null; replace('block-view', h('div', { class: 'message bad' }, 'A block number is a whole number from 0.')); return; }
      showBlock(Number(raw));
    });
    // The block view follows the address: #block=N at load, and when it changes later (back, a pasted link).
    window.addEventListener('hashchange', () => {
      const n = blockInHash();
      if (n !== null && n !== state.block) showBlock(n);
    });
    const n = blockInHash();
    if (n !== null) showBlock(n); else tick();
  }

  function blockInHash() {
    const match = /^#block=([0-9]+)$/.exec(location.hash);
    return match ? Number(match[1]) : null;
  }

  document.addEventListener('DOMContentLoaded', start);
})();
