() => {
  const problems = [];
  const visible = (el) => el.offsetParent !== null || el.closest("dialog, #drawer");
  const named = (el) => (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
    || el.textContent.trim() || el.title || "").length > 0;
  if (!document.documentElement.lang) problems.push("html has no lang");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 headings`);
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    if (!(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")))
      problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.id || el.name}`);
  }
  for (const el of document.querySelectorAll("button, a[href], summary")) {
    if (visible(el) && !named(el)) problems.push(`unnamed ${el.outerHTML.slice(0, 80)}`);
  }
  for (const table of document.querySelectorAll("table")) {
    if (visible(table) && table.tHead && !table.tHead.querySelector("th[scope=col]"))
      problems.push("table header cells without scope");
  }
  // WCAG AA contrast: 4.5:1 for text, 3:1 for large or bold text, against the first opaque background.
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let at = el; at; at = at.parentElement) {
      const c = rgb(getComputedStyle(at).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!walker.currentNode.textContent.trim() || !el || el.offsetParent === null) continue;
    if (el.closest(".sr-only, .skip-link, [hidden], option")) continue;
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && style.fontWeight >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)} for "${el.textContent.trim().slice(0, 30)}"`);
    }
  }
  return problems;
}
