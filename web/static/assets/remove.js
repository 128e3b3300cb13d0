// Deleting a device: DELETE /v1/devices/{id} once the operator confirmed
// in the page. A refusal (no admin token, a hub that cannot delete) is
// shown where the operator clicked, with what to do.

import { request, HTTPError, TOKEN } from "./api.js";
import { view, removeDevice } from "./model.js";
import { setText } from "./dom.js";

const $ = (id) => document.getElementById(id);
let bar;
let text;
let yes;
let no;
let target = ""; // the device the open question is about
let removed = (_id) => {};

/** wireDelete connects the Delete button; hooks.removed(id) runs after a deletion. */
export function wireDelete(hooks) {
  removed = hooks.removed;
  bar = $("delete-bar");
  text = $("delete-text");
  yes = $("delete-yes");
  no = $("delete-no");
  $("delete").addEventListener("click", () => ask(view.selected));
  yes.addEventListener("click", confirmed);
  no.addEventListener("click", closeDelete);
}

/** closeDelete hides the question or its answer. */
export function closeDelete() {
  if (bar) bar.hidden = true;
  target = "";
}

function show(state, message) {
  bar.dataset.state = state;
  setText(text, message);
  yes.hidden = state !== "ask";
  yes.disabled = false;
  setText(no, state === "ask" ? "Cancel" : "Close");
  bar.hidden = false;
}

function ask(id) {
  if (!id) return;
  target = id;
  show("ask", "Delete " + id + "? Its record, latest values and sequence state are removed and its " +
    "connections closed. Its retained events stay until retention drops them; if it sends again, it " +
    "comes back as a new device.");
  yes.focus();
}

async function confirmed() {
  const id = target;
  if (!id) return;
  yes.disabled = true;
  try {
    await request("DELETE", "v1/devices/" + encodeURIComponent(id));
  } catch (err) {
    // 404: someone else deleted it first; the page forgets it all the same.
    if (!(err instanceof HTTPError && err.status === 404)) {
      show("refused", refusal(err, id));
      return;
    }
  }
  removeDevice(id);
  removed(id);
  show("done", id + " deleted.");
}

function refusal(err, id) {
  if (!(err instanceof HTTPError)) return "Could not reach the hub to delete " + id + ": " + err.message;
  const hub = err.hubMessage ? " (" + err.hubMessage + ")" : "";
  if (err.auth) {
    return "The hub refused" + hub + ": deleting a device needs the admin token" +
      (TOKEN ? ", and this page's token is not it" : "") +
      ". Open this page as " + location.pathname + "?token=… with the admin token to delete devices.";
  }
  if (err.status === 405) return "This hub cannot delete devices (HTTP 405): it is older than this page.";
  return "Deleting " + id + " failed: HTTP " + err.status + hub + ".";
}
