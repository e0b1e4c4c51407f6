// People type-ahead on the users page: as one types a fragment ("mart"), ask the people search
// API (debounced) and list the people it finds under the box, an ARIA combobox: Down and Up move
// through the suggestions, Enter opens the one chosen (else submits the search), Escape closes.
// A directory that has not answered yet is named ("still answering") and asked again shortly.
"use strict";
(() => {
  const input = document.querySelector("[data-typeahead]");
  if (!input) return;
  const list = document.getElementById(input.getAttribute("aria-controls"));
  const status = document.getElementById("user-suggestions-status");
  const endpoint = input.dataset.typeahead;
  const DEBOUNCE_MS = 200;
  const RETRY_MS = 1500;
  const MAX_RETRIES = 5;
  const MIN_LENGTH = 2;
  const SEARCHABLE = /^[\p{L}\p{N}\p{M} .@_'+-]+$/u;  // limits.clean_search_text
  let timer = null;
  let retry = null;
  let asked = 0;  // the newest request: older answers are dropped
  let active = -1;
  let items = [];

  function close() {
    list.hidden = true;
    list.replaceChildren();
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    items = [];
    active = -1;
  }

  function choose(index) {
    items.forEach((item, n) => item.setAttribute("aria-selected", n === index ? "true" : "false"));
    active = index;
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", items[index].id);
      items[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function open(person) {
    location.assign("/users/" + encodeURIComponent(person));
  }

  function show(found) {
    list.replaceChildren();
    items = found.people.map((person, n) => {
      const item = document.createElement("li");
      item.id = `user-suggestion-${n}`;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", "false");
      item.dataset.reference = person.reference;
      const name = document.createElement("span");
      name.className = "suggestion-name";
      name.textContent = person.title;
      const where = document.createElement("span");
      where.className = "muted suggestion-detail";
      const directories = [...new Set(person.accounts.map((a) => a.directory))];
      where.textContent = `${person.reference} · ${directories.join(", ")}`;
      item.append(name, where);
      item.addEventListener("mousedown", (event) => { event.preventDefault(); open(person.reference); });
      list.append(item);
      return item;
    });
    active = -1;
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", items.length ? "true" : "false");
    const waiting = found.still_answering.length ? ` Still answering: ${found.still_answering.join(", ")}.` : "";
    const failed = Object.keys(found.failed).length ? ` Did not answer: ${Object.keys(found.failed).join(", ")}.` : "";
    const count = found.people.length === 1 ? "1 person" : `${found.people.length} people`;
    status.textContent = `${count}${found.more ? " (more: press Enter)" : ""}.${waiting}${failed}`;
    status.dataset.stillAnswering = found.still_answering.join(" ");
  }

  async function ask(text, retries) {
    const mine = ++asked;
    clearTimeout(retry);
    const url = `${endpoint}?query=${encodeURIComponent(text)}&page_size=8`;
    let found;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new Error(data?.error?.message || `the server answered ${response.status}`);
      found = data;
    } catch (error) {
      if (mine === asked) { close(); status.textContent = String(error.message || error); }
      return;
    }
    if (mine !== asked || input.value.trim() !== text) return;
    show(found);
    if (found.still_answering.length && retries < MAX_RETRIES) {
      retry = setTimeout(() => ask(text, retries + 1), RETRY_MS);
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    clearTimeout(retry);
    const text = input.value.trim();
    if (text.length < MIN_LENGTH || !SEARCHABLE.test(text)) {
      asked++;
      close();
      status.textContent = text && text.length >= MIN_LENGTH ? "Press Enter to look this up exactly." : "";
      return;
    }
    timer = setTimeout(() => ask(text, 0), DEBOUNCE_MS);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && items.length) {
      event.preventDefault();
      choose((active + 1) % items.length);
    } else if (event.key === "ArrowUp" && items.length) {
      event.preventDefault();
      choose(active <= 0 ? items.length - 1 : active - 1);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      open(items[active].dataset.reference);
    } else if (event.key === "Escape" && !list.hidden) {
      event.preventDefault();
      close();
    }
  });

  input.addEventListener("blur", () => setTimeout(close, 150));
})();
