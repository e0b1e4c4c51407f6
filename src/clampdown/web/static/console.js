// Clampdown console: a little progressive enhancement over server-rendered pages.
// Every change goes through the JSON API with the session cookie and the X-CSRF-Token header;
// the server checks every permission again.
"use strict";
(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const csrfToken = () => $('meta[name="csrf-token"]')?.content || "";

  function newKey() {
    if (window.crypto?.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let leaving = false;  // set once the page is signing out

  async function api(method, url, body, headers = {}) {
    const sent = { Accept: "application/json", ...headers };
    if (method !== "GET") sent["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method, headers: sent, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (response.status === 401 && !leaving) { location.assign("/login?next=" + encodeURIComponent(location.pathname)); }
    // `detail` keeps the whole error: a query's mistake has its line and column there.
    if (!response.ok) throw Object.assign(new Error(data?.error?.message || `the server answered ${response.status}`), { detail: data?.error });
    return data;
  }

  async function fragment(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.redirected && new URL(response.url).pathname === "/login") {
      if (!leaving) location.assign(response.url);
      throw new Error("signed out");
    }
    return response.text();
  }

  let toastTimer = 0;
  function toast(message, tone = "info") {
    const box = $("#toast");
    if (!box) return;
    box.textContent = message;
    box.className = `toast ${tone}`;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // --- sign in / out -------------------------------------------------------------------
  const signInForm = $("#sign-in-form");
  // The server only renders a same-site path into data-next; checked again here, so no edit of
  // the page can turn the sign-in into a redirect to another origin.
  const landing = () => {
    const next = signInForm?.dataset.next || "/users";
    const url = new URL(next, location.origin);
    return url.origin === location.origin && /^\/(?![\/\\])/.test(next) ? url.pathname + url.search + url.hash : "/users";
  };
  // Back from single sign-on, the first page of the redirect chain was cross-site, so the browser
  // kept the SameSite=Strict cookie from it; asking from this page shows whether we are signed in.
  if (signInForm) {
    fetch("/api/v1/me", { credentials: "same-origin" }).then((r) => {
      if (r.ok) location.assign(landing());
    });
  }
  signInForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("#sign-in-error");
    error.textContent = "";
    try {
      await api("POST", "/api/v1/session", {
        username: signInForm.username.value, password: signInForm.password.value,
      });
      location.assign(landing());
    } catch (exc) {
      error.textContent = exc.message;
      signInForm.password.select();
    }
  });

  async function signOut() {
    // A poll answered after the session ended must not send the page to /login?next=... and
    // abort this navigation: once signing out, nothing else navigates.
    leaving = true;
    await fetch("/api/v1/session", { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() } });
    location.assign("/login");
  }

  // --- the drawer (side panel) ---------------------------------------------------------
  const drawer = $("#drawer");
  const backdrop = $(".drawer-backdrop");
  let drawerUrl = null;
  let drawerOpener = null;

  async function loadDrawer(url) {
    const body = $("#drawer-body");
    const html = await fragment(url);
    if (drawerUrl !== url) return;
    body.innerHTML = html;
    const titled = $("[data-panel-title]", body);
    if (titled) $("#drawer-title").textContent = titled.dataset.panelTitle;
    if ($('[data-poll-until-final="yes"]', body)) setTimeout(() => { if (drawerUrl === url) loadDrawer(url); }, 1500);
  }

  async function openDrawer(url, title, opener) {
    drawerUrl = url;
    drawerOpener = opener;
    $("#drawer-title").textContent = title || "Details";
    $("#drawer-body").innerHTML = '<p class="muted">Loading…</p>';
    drawer.hidden = false;
    backdrop.hidden = false;
    $(".drawer-head button", drawer).focus();
    try { await loadDrawer(url); } catch (exc) { $("#drawer-body").textContent = exc.message; }
  }

  function closeDrawer() {
    drawer.hidden = true;
    backdrop.hidden = true;
    drawerUrl = null;
    drawerOpener?.focus();
  }

  // --- regions that show state: refreshed after an action -----------------------------
  async function refreshPage() {
    const regions = document.querySelectorAll("main [data-refresh-on-action]");
    if (regions.length) {
      const html = await fragment(location.href);
      const fresh = new DOMParser().parseFromString(html, "text/html").querySelectorAll("main [data-refresh-on-action]");
      regions.forEach((region, i) => { if (fresh[i]) region.replaceWith(fresh[i]); });
    }
    if (drawerUrl) await loadDrawer(drawerUrl);
    for (const poller of document.querySelectorAll("[data-poll]")) await poll(poller);
  }

  async function watch(actionId) {
    for (let i = 0; i < 120; i++) {
      const action = await api("GET", `/api/v1/actions/${actionId}`);
      if (["completed", "failed", "cancelled"].includes(action.status)) {
        const what = action.error ? `${action.status}: ${action.error.message}` : action.status;
        toast(`Action ${actionId} ${what}`, action.status === "completed" ? "ok" : "bad");
        await refreshPage();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  // --- the confirmation dialog: every action names its account and provider, asks a reason
  const dialog = $("#action-dialog");
  let onConfirm = null;

  function confirmAction({ title, account, provider, description, warning, confirmLabel, askReason, offerApproval, submit }) {
    const field = (name) => $(`[data-field="${name}"]`, dialog);
    $("#action-dialog-title").textContent = title;
    field("account").textContent = account;
    field("provider").textContent = provider;
    field("description").textContent = description || "";
    field("warning").textContent = warning || "";
    field("warning").hidden = !warning;
    field("error").textContent = "";
    field("reason-block").hidden = !askReason;
    field("approval-block").hidden = !offerApproval;
    field("plan-block").hidden = true;
    field("plan").replaceChildren();
    $("#action-approval").checked = false;
    field("confirm").textContent = confirmLabel;
    field("confirm").disabled = false;
    $("#action-reason").value = "";
    onConfirm = submit;
    dialog.showModal();
    (askReason ? $("#action-reason") : field("confirm")).focus();
  }

  dialog?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const reason = $("#action-reason").value.trim();
    const error = $('[data-field="error"]', dialog);
    if (!$('[data-field="reason-block"]', dialog).hidden && !reason) {
      error.textContent = "Give a reason: it is recorded with the action.";
      $("#action-reason").focus();
      return;
    }
    const confirm = $('[data-field="confirm"]', dialog);
    confirm.disabled = true;
    try {
      const message = await onConfirm(reason, $("#action-approval").checked);
      dialog.close();
      toast(message, "ok");
    } catch (exc) {
      error.textContent = exc.message;
      confirm.disabled = false;
    }
  });

  // Where a request comes from, recorded with the action: the side panel, the user page, or else
  // the console at large (the action center), which is a person acting by hand.
  function sourceOf(button) {
    if (button.closest("#drawer")) return "side_panel";
    if (location.pathname.startsWith("/users/")) return "user_page";
    return "manual";
  }

  function runAction(button) {
    const d = button.dataset;
    const source = sourceOf(button);
    confirmAction({
      title: d.title, account: d.account, provider: d.provider, description: d.description,
      warning: d.warning, confirmLabel: `${d.title}`, askReason: true, offerApproval: true,
      submit: async (reason, requestApproval) => {
        const action = await api("POST", "/api/v1/actions",
          { type: d.type, target: d.target, reason, request_approval: requestApproval, source,
            ...(d.instance ? { instance: d.instance } : {}) },
          { "Idempotency-Key": newKey() });
        refreshPage();
        if (action.status === "awaiting_approval") {
          return `Action ${action.id} waits for a second person to approve (${action.approval_reason})`;
        }
        watch(action.id);
        return `Action ${action.id} queued: ${d.title} for ${d.account}`;
      },
    });
  }

  function undoAction(button) {
    const d = button.dataset;
    const source = sourceOf(button);
    confirmAction({
      title: d.title, account: d.account, provider: d.provider, description: d.description,
      confirmLabel: "Undo", askReason: true,
      submit: async (reason) => {
        const action = await api("POST", `/api/v1/actions/${d.undoAction}/undo`, { reason, source });
        watch(action.id);
        refreshPage();
        return `Undo queued as action ${action.id}`;
      },
    });
  }

  function decideAction(button) {
    const d = button.dataset;
    const approve = d.approve === "yes";
    confirmAction({
      title: d.title, account: d.account, provider: d.provider, description: d.description,
      confirmLabel: approve ? "Approve" : "Reject", askReason: true,
      submit: async (note) => {
        await api("POST", "/api/v1/approvals", { approve, action_ids: [Number(d.decideAction)], note });
        if (approve) watch(Number(d.decideAction));
        refreshPage();
        return `Action ${d.decideAction} ${approve ? "approved" : "rejected"}`;
      },
    });
  }

  async function watchAll(ids, label) {
    for (let i = 0; i < 120; i++) {
      const actions = await Promise.all(ids.map((id) => api("GET", `/api/v1/actions/${id}`)));
      if (actions.every((a) => ["completed", "failed", "cancelled"].includes(a.status))) {
        const failed = actions.filter((a) => a.status !== "completed").length;
        toast(`${label}: ${actions.length - failed} completed, ${failed} not`, failed ? "bad" : "ok");
        await refreshPage();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function showPlan(name, target) {
    // A dry run writes and changes nothing; its reason is never recorded.
    const plan = $('[data-field="plan"]', dialog);
    $('[data-field="plan-block"]', dialog).hidden = false;
    plan.replaceChildren(Object.assign(document.createElement("li"), { textContent: "Reading the accounts…" }));
    try {
      const run = await api("POST", `/api/v1/playbooks/${encodeURIComponent(name)}/run`,
        { target, reason: "plan preview", dry_run: true });
      const lines = [...run.plan.map((p) => `${p.action} on ${p.account || p.target}: ${p.outcome}` +
        (p.current ? ` (now ${p.current})` : "") + (p.linked_by ? `; linked: ${p.linked_by}` : "")),
        ...run.skipped.map((s) => `skipped: ${s}`)];
      plan.replaceChildren(...lines.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    } catch (exc) {
      plan.replaceChildren(Object.assign(document.createElement("li"), { textContent: exc.message }));
    }
  }

  function runPlaybook(button) {
    const d = button.dataset;
    confirmAction({
      title: d.title, account: d.account, provider: "every provider where this person has an account",
      description: d.description, confirmLabel: d.title, askReason: true, offerApproval: d.runPlaybook !== "release",
      submit: async (reason, requestApproval) => {
        const body = { target: d.target, reason };
        if (d.runPlaybook !== "release") body.request_approval = requestApproval;
        const run = await api("POST", `/api/v1/playbooks/${encodeURIComponent(d.runPlaybook)}/run`, body);
        const ids = run.actions.map((a) => a.id);
        refreshPage();
        if (run.actions.some((a) => a.status === "awaiting_approval")) {
          return `${d.title}: ${ids.length} actions wait for a second person to approve`;
        }
        watchAll(ids, d.title);
        return `${d.title}: ${ids.length} actions queued (batch ${(run.batch_id || "").slice(0, 8)})`;
      },
    });
    showPlan(d.runPlaybook, d.target);
  }

  function cancelAction(button) {
    const d = button.dataset;
    confirmAction({
      title: d.title, account: d.account, provider: d.provider, description: d.description,
      confirmLabel: "Cancel the action", askReason: false,
      submit: async () => {
        const action = await api("POST", `/api/v1/actions/${d.cancelAction}/cancel`);
        refreshPage();
        if (action && action.status === "running") {
          return `Action ${d.cancelAction}: cancel requested; it is not retried after the attempt now running`;
        }
        return `Action ${d.cancelAction} cancelled`;
      },
    });
  }

  // --- live regions: the action center table --------------------------------------------
  async function poll(region) {
    if (document.hidden || leaving) return;
    try {
      const html = await fragment(region.dataset.poll);
      if (html !== region.dataset.lastHtml) {
        region.innerHTML = html;
        region.dataset.lastHtml = html;
        const total = $("[data-pending-total]", region)?.dataset.pendingTotal;
        const badge = $("[data-pending-count]");
        if (badge && total !== undefined) badge.textContent = total;
      }
    } catch { /* the next tick tries again */ }
  }

  for (const region of document.querySelectorAll("[data-poll]")) {
    const seconds = Number(region.dataset.pollSeconds || 3);
    setInterval(() => poll(region), seconds * 1000);
  }

  // --- one click handler for everything ------------------------------------------------
  document.addEventListener("click", (event) => {
    const target = event.target.closest("button, a, [data-close-drawer]");
    if (!target) return;
    const d = target.dataset;
    if ("openPanel" in d) { event.preventDefault(); openDrawer(d.openPanel, d.panelTitle, target); }
    else if ("closeDrawer" in d) closeDrawer();
    else if ("runAction" in d) { target.closest("details")?.removeAttribute("open"); runAction(target); }
    else if ("undoAction" in d) undoAction(target);
    else if ("cancelAction" in d) cancelAction(target);
    else if ("decideAction" in d) decideAction(target);
    else if ("runPlaybook" in d) runPlaybook(target);
    else if ("dialogCancel" in d) dialog.close();
    else if ("signOut" in d) signOut();
  });

  const FOCUSABLE = "a[href], button:not([disabled]), input, select, textarea, summary, [tabindex]:not([tabindex='-1'])";

  document.addEventListener("keydown", (event) => {
    if (dialog?.open) return; // the modal dialog keeps focus by itself
    const menu = event.target.closest?.("details.menu[open]");
    if (event.key === "Escape" && menu) {
      menu.removeAttribute("open");
      $("summary", menu).focus();
      event.stopPropagation();
    } else if (event.key === "Escape" && drawer && !drawer.hidden) {
      closeDrawer();
    } else if (event.key === "Tab" && drawer && !drawer.hidden) {
      // Keep keyboard focus inside the open panel, as for any modal.
      // checkVisibility: the items of a closed <details> menu have a box but cannot take focus.
      const shown = (el) => (el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null);
      const inside = Array.from(drawer.querySelectorAll(FOCUSABLE)).filter(shown);
      if (!inside.length) return;
      const first = inside[0];
      const last = inside[inside.length - 1];
      if (!drawer.contains(document.activeElement)) { event.preventDefault(); first.focus(); }
      else if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
      else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
    }
  });

  window.clampdown = { api, openDrawer, confirmAction, watch, refreshPage, toast, newKey };
})();
