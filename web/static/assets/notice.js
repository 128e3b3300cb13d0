// The notice under the top bar: a problem the operator has to act on, said
// in the page with what to do, not only in the browser's console. Today
// that is the hub refusing the page's token.

import { setText } from "./dom.js";

const $ = (id) => document.getElementById(id);

/**
 * authAdvice explains a 401 or 403 from the hub: what is wrong, the hub's
 * own words, what to do, and a short state for the connection badge.
 */
export function authAdvice(err, token, topics) {
  const page = location.origin + location.pathname;
  const scopes = topics.join(", ");
  if (err.status === 403) {
    return {
      title: "This token cannot read everything the dashboard shows",
      detail: err.hubMessage || "The hub answered 403 Forbidden.",
      hint: "The dashboard reads " + scopes + ". Open it with a watcher token whose topics cover all of them, " +
        "or with the admin token: " + page + "?token=…",
      state: "token too narrow",
    };
  }
  if (!token) {
    return {
      title: "This page needs a watcher token",
      detail: "The hub has credentials, and this page was opened without a token.",
      hint: "Open " + page + "?token=… with a watcher token whose topics cover " + scopes + ", or the admin token.",
      state: "needs a token",
    };
  }
  return {
    title: "The hub did not accept this page's token",
    detail: err.hubMessage || "The hub answered 401 Unauthorized.",
    hint: "Check the token after ?token= in the address: it must be one of this hub's watcher tokens " +
      "(topics covering " + scopes + ") or its admin token. Open " + page + "?token=… with the right one.",
    state: "token refused",
  };
}

export function showNotice({ title, detail, hint }) {
  setText($("notice-title"), title);
  setText($("notice-detail"), detail);
  setText($("notice-hint"), hint);
  $("notice").hidden = false;
}

export function hideNotice() {
  $("notice").hidden = true;
}
