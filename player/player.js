// The Meridian player page: plays a stream through the local fleet with hls.js (content
// steering on, retries and timeouts set for fast failover) or dash.js, and shows which edge
// served every segment (X-Served-By), the buffer, stalls, and the regions' health.
//
// window.meridian is what the browser test reads: the segment log, stalls, fatal errors.

const $ = (id) => document.getElementById(id);
const state = (window.meridian = {
  log: [],          // {at, url, servedBy, region, cache, ms, ok}
  stalls: [],       // {startedAt, ms}
  stallStarted: null,
  playingOnce: false,
  fatal: null,
  errors: [],
  pathway: null,
  buffer: [],       // {at, ahead}: seconds buffered ahead, every 250 ms (the last 2 minutes)
  router: [],       // {at, down}: the edges the router showed down, every second
});

const config = await (await fetch('/api/config')).json();
const client = () => $('client').value;
// ?debug on the page's URL turns the player libraries' own logs on (the browser console).
const debugging = new URLSearchParams(location.search).has('debug');
let player = null;

function servedBy(headerValue) {
  if (!headerValue) return { edge: '?', region: '?' };
  const [edge, region] = headerValue.split(';region=');
  return { edge, region: region || '?' };
}

function record(entry) {
  state.log.push(entry);
  const row = document.createElement('tr');
  if (!entry.ok) row.className = 'failed';
  const name = entry.url.split('/').slice(-2).join('/');
  for (const text of [new Date(entry.at).toISOString().slice(11, 23), name,
    entry.ok ? `${entry.edge} (${entry.region})` : 'failed', entry.cache || '', String(entry.ms)]) {
    const cell = document.createElement('td');
    cell.textContent = text;
    row.appendChild(cell);
  }
  const body = $('log').tBodies[0];
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > 40) body.deleteRow(body.rows.length - 1);
  if (entry.ok) $('edge').textContent = `${entry.edge} (${entry.region})`;
}

function stop() {
  if (player && player.destroy) player.destroy();
  if (player && player.reset) player.reset();
  player = null;
}

function playHls(url) {
  const hls = new Hls({
    contentSteeringEnabled: true,
    debug: debugging ? true : { log() {}, info() {}, debug() {}, warn: (...a) => console.warn(...a), error: (...a) => console.error(...a) },
    lowLatencyMode: false,
    // Live: 8 s behind the live edge (four 2 s segments), not hls.js's 6 s. Leaving a hung edge
    // takes up to about 3.5 s (2 s to the first byte, then the next pathway's segment), and the
    // buffer ahead of a live player saws by a segment: 6 s behind left 3.8 s at its low point,
    // and a freeze there stalled 2.2 s (CI, 2026-12-04).
    liveSyncDurationCount: 4,
    // CMCD (CTA-5004) in each request's query: the session id for the edges' access logs, and
    // the next object (`nor`), which the edge prefetches if the playlist it holds names it.
    // hls.js 1.7 sends CMCD 1 by default; query mode, because CMCD headers would make every
    // cross-origin segment request a CORS preflight.
    cmcd: { useHeaders: false },
    // A short buffer, as dash.js keeps below: the demo's VOD titles are 32 s, and a handover
    // must be seen (and work) while the player is still fetching, not after it has it all.
    maxBufferLength: 8,
    maxMaxBufferLength: 8,
    // Fail over fast: a dead edge refuses at once on loopback; do not keep retrying it. A hung
    // one (frozen, black-holed) is given 2 s to the first byte, one retry, then the next
    // pathway: 4 s at most, inside the 8 s buffer. A whole segment may take 6 s (the lowest
    // rendition's 2 s segment loads far faster on any link that can play it).
    fragLoadPolicy: { default: {
      maxTimeToFirstByteMs: 2000, maxLoadTimeMs: 6000,
      timeoutRetry: { maxNumRetry: 1, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 2, retryDelayMs: 100, maxRetryDelayMs: 300 },
    } },
    playlistLoadPolicy: { default: {
      maxTimeToFirstByteMs: 2000, maxLoadTimeMs: 4000,
      timeoutRetry: { maxNumRetry: 1, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 2, retryDelayMs: 100, maxRetryDelayMs: 300 },
    } },
    // The steering server locates the viewer; in development mode it takes ?client=.
    xhrSetup(xhr, requestUrl) {
      if (requestUrl.includes('/steer/')) {
        const sep = requestUrl.includes('?') ? '&' : '?';
        xhr.open('GET', `${requestUrl}${sep}client=${encodeURIComponent(client())}`, true);
      }
    },
  });
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => {
    const xhr = data.networkDetails;
    const who = servedBy(xhr && xhr.getResponseHeader ? xhr.getResponseHeader('X-Served-By') : null);
    const stats = data.frag.stats || data.part?.stats;
    const ms = stats ? Math.round(stats.loading.end - stats.loading.start) : 0;
    record({ at: Date.now(), url: data.frag.url, ...who,
      cache: xhr && xhr.getResponseHeader ? xhr.getResponseHeader('X-Cache') : '', ms, ok: true });
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    const text = `${data.type}/${data.details}${data.fatal ? ' (fatal)' : ''}`;
    state.errors.push({ at: Date.now(), text, fatal: data.fatal, url: data.frag?.url || data.url || '',
      reason: String(data.reason || data.error?.message || ''), level: data.frag?.level, sn: data.frag?.sn });
    // A failed request, not one the player cancelled itself (hls.js aborts in-flight loads
    // when it switches pathway or level).
    const failedLoad = data.details === Hls.ErrorDetails.FRAG_LOAD_ERROR || data.details === Hls.ErrorDetails.FRAG_LOAD_TIMEOUT;
    if (data.frag && failedLoad) {
      record({ at: Date.now(), url: data.frag.url, edge: '', region: '', ms: 0, ok: false });
    }
    $('errors').textContent = `${state.errors.length}: ${text}`;
    if (data.fatal) state.fatal = text;
  });
  hls.on(Hls.Events.STEERING_MANIFEST_LOADED, (_, data) => {
    state.pathway = data.steeringManifest['PATHWAY-PRIORITY'][0];
    $('pathway').textContent = data.steeringManifest['PATHWAY-PRIORITY'].join(' → ');
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => $('video').play().catch(() => {}));
  hls.loadSource(url);
  hls.attachMedia($('video'));
  return hls;
}

function playDash(url) {
  const dash = dashjs.MediaPlayer().create();
  // The steering server locates the viewer; in development mode it takes ?client=.
  dash.extend('RequestModifier', () => ({
    modifyRequestHeader: (xhr) => xhr,
    modifyRequestURL: (u) => (u.includes('/steer/') ? `${u}${u.includes('?') ? '&' : '?'}client=${encodeURIComponent(client())}` : u),
  }), true);
  // Fail over fast, as for hls.js: the next pathway at the first failed segment. A short buffer, as
  // hls.js keeps for live: dash.js would otherwise fetch a whole short VOD title at once, and a
  // handover must work while the player is still fetching.
  dash.updateSettings({ debug: { logLevel: debugging ? dashjs.Debug.LOG_LEVEL_DEBUG : dashjs.Debug.LOG_LEVEL_WARNING }, streaming: {
    applyContentSteering: true,
    // CMCD 1 in the query, as hls.js sends it above (dash.js 4.7 has it off by default).
    cmcd: { enabled: true, mode: 'query' },
    buffer: { stableBufferTime: 6, bufferTimeAtTopQuality: 6, bufferTimeAtTopQualityLongForm: 6 },
    // Live: 6 s behind the live edge (three 2 s segments), whatever the packager suggests.
    // ffmpeg's DASH muxer suggests one segment's time, and playback would sit on the edge of
    // what exists, stalling at every segment boundary.
    delay: { liveDelay: 6 },
    retryAttempts: { MediaSegment: 0, InitializationSegment: 1, MPD: 2 },
    retryIntervals: { MediaSegment: 100, InitializationSegment: 100, MPD: 200 },
    // Hangs as well as refusals. dash.js's defaults (20 s a segment, 10 s a manifest, each for
    // the whole download) outlast the 6 s buffer: a frozen or black-holed edge stalled playback
    // 6 s, or for good. A segment gets 2 s and no retry on the same location (a retry there
    // would hang 2 s more: measured, a black hole then cost 5 s and a 0.3 s stall), so a hang
    // costs 2 s, inside the buffer, before the segment is asked of the next service location;
    // a manifest gets 2 s and two retries. The lowest rendition's 2 s segment (about 100 KB)
    // loads in well under 2 s on any link that can play it at all. The price: a viewer whose
    // link is slower than that loses the segment and fetches it again elsewhere.
    fragmentRequestTimeout: 2000,
    manifestRequestTimeout: 2000,
  } });
  dash.on(dashjs.MediaPlayer.events.FRAGMENT_LOADING_COMPLETED, (e) => {
    const request = e.request || {};
    // The request's own metrics entry has the response headers and, after a redirect (a
    // draining edge's), the URL that answered: X-Served-By says which edge that was.
    const metric = dash.getDashMetrics().getCurrentHttpRequest(request.mediaType);
    const mine = metric && metric.url === request.url ? metric : null;
    const header = (name) => {
      const line = (mine?._responseHeaders || '').split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name}:`));
      return line ? line.slice(name.length + 1).trim() : null;
    };
    let who = servedBy(header('x-served-by'));
    if (who.edge === '?') {
      const edge = edgeAt(mine?.actualurl || request.url || '');
      who = { edge: edge ? edge.name : '?', region: edge ? edge.region : '?' };
    }
    record({ at: Date.now(), url: request.url || '', ...who, cache: header('x-cache') || '',
      ms: Math.round((request.requestEndDate - request.requestStartDate) || 0), ok: !e.error });
  });
  dash.on(dashjs.MediaPlayer.events.CONTENT_STEERING_REQUEST_COMPLETED, (e) => {
    const priority = e.currentSteeringResponseData?.pathwayPriority || [];
    state.pathway = priority[0] || null;
    $('pathway').textContent = priority.join(' → ');
  });
  // dash.js has no fatal flag: a failed segment or init segment download (codes 17, 27, 28) is
  // one it recovers from by retrying or by moving to the next pathway; anything else stops it.
  const recoverable = new Set([17, 27, 28]);
  dash.on(dashjs.MediaPlayer.events.ERROR, (e) => {
    const error = e.error || {};
    const fatal = !recoverable.has(error.code);
    const url = error.data?.request?.url || '';
    const text = `${error.code}: ${error.message || JSON.stringify(e)}`;
    state.errors.push({ at: Date.now(), text, fatal, url });
    if (!fatal && url) record({ at: Date.now(), url, edge: '', region: '', ms: 0, ok: false });
    if (fatal) state.fatal = text;
    $('errors').textContent = `${state.errors.length}: ${text}`;
  });
  dash.initialize($('video'), url, true);
  return dash;
}

/** The fleet's edge whose HTTP address a URL points at (when no X-Served-By was readable). */
function edgeAt(url) {
  const fleet = state.fleet;
  if (!fleet || !url) return null;
  try {
    const host = new URL(url).host;
    return fleet.edges.find((e) => e.http && new URL(e.http).host === host) || null;
  } catch {
    return null;
  }
}

async function start() {
  stop();
  const [kind, title] = $('stream').value.split('/');
  const file = $('protocol').value === 'hls' ? 'master.m3u8' : 'manifest.mpd';
  // A fleet with signed URLs: the title's folder with a token in front (/t/<token>/live/x/),
  // which the relative URLs in its playlists carry to every segment, on every edge.
  let folder = `/${kind}/${title}/`;
  if (config.signed_urls) {
    const signed = await fetch(`/api/sign?prefix=${folder}`);
    if (!signed.ok) {
      state.fatal = `signing ${folder}: ${signed.status} ${await signed.text()}`;
      $('errors').textContent = state.fatal;
      return;
    }
    folder = (await signed.json()).path;
  }
  // The router's redirect sends the viewer to the nearest edge; steering takes over from there.
  const url = `${config.router}/r${folder}${file}?client=${encodeURIComponent(client())}`;
  player = $('protocol').value === 'hls' ? playHls(url) : playDash(url);
  state.player = player; // for debugging from the console
  $('video').play().catch(() => {});
}

const video = $('video');
video.addEventListener('playing', () => {
  state.playingOnce = true;
  if (state.stallStarted !== null) {
    const ms = Date.now() - state.stallStarted;
    state.stalls.push({ startedAt: state.stallStarted, ms, context: state.stallContext });
    state.stallStarted = null;
  }
});
video.addEventListener('waiting', () => {
  if (state.playingOnce && state.stallStarted === null) {
    state.stallStarted = Date.now();
    const b = video.buffered;
    const ranges = [];
    for (let i = 0; i < b.length; i++) ranges.push([b.start(i).toFixed(2), b.end(i).toFixed(2)]);
    state.stallContext = { at: video.currentTime.toFixed(2), ranges };
  }
});

setInterval(() => {
  const b = video.buffered;
  const ahead = b.length ? b.end(b.length - 1) - video.currentTime : 0;
  state.buffer.push({ at: Date.now(), ahead: Math.max(0, ahead) });
  if (state.buffer.length > 480) state.buffer.shift();
  $('position').textContent = `${video.currentTime.toFixed(1)} s`;
  $('buffer').textContent = `${ahead.toFixed(1)} s`;
  const total = state.stalls.reduce((s, x) => s + x.ms, 0);
  $('stalls').textContent = `${state.stalls.length} (${total} ms)`;
}, 250);

async function refreshRegions() {
  try {
    const fleet = await (await fetch(`${config.router}/fleet`)).json();
    state.fleet = fleet;
    state.router.push({ at: Date.now(), down: fleet.edges.filter((e) => !e.up).map((e) => e.name) });
    if (state.router.length > 120) state.router.shift();
    const list = $('regions');
    list.textContent = '';
    for (const region of fleet.regions) {
      const edges = fleet.edges.filter((e) => e.region === region.name);
      const item = document.createElement('li');
      item.innerHTML = `<strong>${region.name}</strong>: ` + edges.map((e) => {
        const cls = !e.up ? 'down' : e.draining ? 'draining' : 'up';
        return `<span class="${cls}">${e.name} ${!e.up ? 'down' : e.draining ? 'draining' : `${Math.round(e.load * 100)}%`}</span>`;
      }).join(', ');
      list.appendChild(item);
    }
  } catch (error) {
    $('regions').textContent = `router unreachable: ${error}`;
  }
}
setInterval(refreshRegions, 1000);
refreshRegions();

async function act(verb) {
  const last = [...state.log].reverse().find((e) => e.ok && e.edge && e.edge !== '?');
  if (!last) return;
  await fetch(`/api/edges/${last.edge}/${verb}`, { method: 'POST' });
}
$('play').addEventListener('click', start);
$('kill').addEventListener('click', () => act('kill'));
$('drain').addEventListener('click', () => act('drain'));
state.start = start;
