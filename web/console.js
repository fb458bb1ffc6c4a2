// The Flightdeck browser console: glue between the Airboss's console WebSocket and the upstream
// noVNC (kind=vnc) and xterm.js (kind=serial) libraries, which do all the real work.
//
// The token in this page's address is the credential. It is read once, removed from the address
// bar (history.replaceState) before anything else happens, and only ever sent in the WebSocket
// URL /v1/console?token=...&kind=... of this same origin. It works once and for 60 s: reloading
// the page cannot reconnect, by design; ask for a new link instead.

const NEW_LINK = 'ask for a new link: pilot open host console host=<MAC> web=yes';

const params = new URLSearchParams(window.location.search);
const token = params.get('token');
const kind = params.get('kind');
window.history.replaceState(null, '', window.location.pathname);

const statusLine = document.getElementById('status');
const screen = document.getElementById('screen');

/** Show `text` in the status line; `state` (connecting, connected, refused, closed, error) is
 * also its data-state attribute, which the style sheet colours and the tests read. */
function status(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = new URLSearchParams({ token, kind });
  return `${scheme}//${window.location.host}/v1/console?${query}`;
}

/** What a WebSocket's end means. Before it opened: the Airboss refused the token (a browser
 * is not told why a WebSocket handshake failed, unless the Airboss accepted and closed with a
 * reason). After: the session ended (the VM stopped, idle timeout, the Airboss went away). */
function ended(event, opened) {
  if (statusLine.dataset.state === 'refused' || statusLine.dataset.state === 'error') {
    return; // already said why (noVNC's security failure, a password prompt)
  }
  const reason = event.reason ? `: ${event.reason}` : '';
  if (!opened) {
    status('refused', `refused${reason || ': this link was already used, has expired (links work once, for 60 s) or the VM is not running'}; ${NEW_LINK}`);
  } else if (event.code === 1000 || event.code === 1001) {
    status('closed', `console closed${reason || ' (the VM stopped or the session ended)'}`);
  } else {
    status('closed', `console closed (code ${event.code})${reason}`);
  }
}

/** xterm.js adds <style> elements of its own (theme, cell size). The page's Content-Security-
 * Policy admits only style sheets from this origin and elements carrying this answer's random
 * nonce, so the elements created here get it; nothing else is relaxed. */
function nonceStyles() {
  const meta = document.querySelector('meta[name="fd-style-nonce"]');
  const nonce = meta ? meta.content : '';
  meta?.remove();
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function createElement(name, options) {
    const element = create.call(this, name, options);
    if (String(name).toLowerCase() === 'style') {
      element.nonce = nonce;
    }
    return element;
  };
}

async function serial() {
  nonceStyles();
  const { Terminal } = await import('./xterm/lib/xterm.mjs');
  const { FitAddon } = await import('./xterm-addon-fit/lib/addon-fit.mjs');
  const term = new Terminal({ cursorBlink: true, scrollback: 10000, convertEol: false });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  window.addEventListener('resize', () => fit.fit());

  const ws = new WebSocket(socketUrl());
  ws.binaryType = 'arraybuffer';
  let opened = false;
  const encoder = new TextEncoder();
  const send = (bytes) => {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(bytes);
    }
  };
  ws.addEventListener('open', () => {
    opened = true;
    status('connected', 'connected: serial console (what you type goes to the VM)');
    term.focus();
  });
  ws.addEventListener('message', (event) => {
    term.write(typeof event.data === 'string' ? event.data : new Uint8Array(event.data));
  });
  ws.addEventListener('close', (event) => ended(event, opened));
  // Keys as the terminal encodes them (UTF-8); binary events (some mouse reports) byte for byte.
  term.onData((data) => send(encoder.encode(data)));
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
}

async function vnc() {
  const { default: RFB } = await import('./novnc/core/rfb.js');
  // Our own WebSocket, handed to noVNC, so that its close code and reason can be shown.
  const ws = new WebSocket(socketUrl());
  ws.binaryType = 'arraybuffer';
  let opened = false;
  ws.addEventListener('open', () => { opened = true; });
  ws.addEventListener('close', (event) => ended(event, opened));
  const rfb = new RFB(screen, ws, { shared: true });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.addEventListener('connect', () => {
    status('connected', 'connected: VNC (click the screen to send keys)');
    rfb.focus();
  });
  rfb.addEventListener('securityfailure', (event) => {
    status('refused', `the VNC server refused the session: ${event.detail.reason || event.detail.status}`);
  });
  rfb.addEventListener('credentialsrequired', () => {
    status('error', 'the VM\'s VNC server asks for a password; the console does not support that');
    rfb.disconnect();
  });
}

async function main() {
  if (!token) {
    status('refused', `this address carries no console credential (a link works once); ${NEW_LINK}`);
    return;
  }
  if (kind !== 'vnc' && kind !== 'serial') {
    status('error', 'kind must be vnc or serial in this address');
    return;
  }
  status('connecting', `connecting to the ${kind === 'vnc' ? 'VNC' : 'serial'} console…`);
  try {
    await (kind === 'vnc' ? vnc() : serial());
  } catch (err) {
    status('error', `the console failed to start: ${err && err.message ? err.message : err}`);
  }
}

main();
