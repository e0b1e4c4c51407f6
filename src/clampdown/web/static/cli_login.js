// `clampdown login --browser`: make a token of the signed-in person sealed to the CLI's one-time key,
// then hand it to the CLI's loopback listener. The token itself never appears in this page.
(() => {
  const box = document.getElementById("cli-login");
  const allow = document.getElementById("cli-login-allow");
  const problem = document.getElementById("cli-login-error");
  if (!box || !allow) return;
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  allow.addEventListener("click", async () => {
    allow.disabled = true;
    problem.textContent = "";
    const { port, key, state, machine } = box.dataset;
    try {
      const answer = await fetch("/api/v1/me/tokens/sealed", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ name: `cli on ${machine}`.slice(0, 200), public_key: key }),
      });
      const body = await answer.json();
      if (!answer.ok) throw new Error(body?.error?.message || `the server answered ${answer.status}`);
      const back = new URL(`http://127.0.0.1:${Number(port)}/callback`);
      back.searchParams.set("state", state);
      back.searchParams.set("sealed", body.sealed);
      window.location.assign(back.toString());
    } catch (err) {
      problem.textContent = `Could not sign in the CLI: ${err.message}`;
      allow.disabled = false;
    }
  });
})();
