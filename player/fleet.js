// The fleet page: regions, edges, health, load and hit ratio, live from the router's /fleet and
// each edge's admin /status, refreshed every second.
const config = await (await fetch('/api/config')).json();
const body = document.querySelector('#fleet tbody');

async function edgeStatus(edge) {
  try {
    return await (await fetch(`${edge.admin}/status`)).json();
  } catch {
    return null;
  }
}

async function refresh() {
  let fleet;
  try {
    fleet = await (await fetch(`${config.router}/fleet`)).json();
  } catch (error) {
    body.innerHTML = `<tr><td colspan="9">router unreachable: ${error}</td></tr>`;
    return;
  }
  const statuses = await Promise.all(fleet.edges.map(edgeStatus));
  body.textContent = '';
  fleet.edges.forEach((edge, i) => {
    const s = statuses[i];
    const health = !edge.up ? 'down' : edge.draining ? 'draining' : 'up';
    const row = document.createElement('tr');
    const cells = [edge.region, edge.name, health, `${Math.round(edge.load * 100)}%`,
      s ? `${Math.round(s.hit_ratio * 100)}%` : '–', s ? s.objects : '–',
      s ? `${(s.used_bytes / 1048576).toFixed(1)} / ${(s.capacity_bytes / 1048576).toFixed(0)} MiB` : '–',
      edge.last_change ? `${new Date(edge.last_change.at_unix_ms).toLocaleTimeString()}: ${edge.last_change.why}` : ''];
    cells.forEach((text, j) => {
      const cell = document.createElement('td');
      cell.textContent = String(text);
      if (j === 2) cell.className = health;
      row.appendChild(cell);
    });
    const actions = document.createElement('td');
    for (const verb of ['kill', 'drain', 'undrain', 'restore']) {
      const button = document.createElement('button');
      button.textContent = verb;
      button.onclick = () => fetch(`/api/edges/${edge.name}/${verb}`, { method: 'POST' });
      actions.appendChild(button);
    }
    row.appendChild(actions);
    body.appendChild(row);
  });
}
setInterval(refresh, 1000);
refresh();
