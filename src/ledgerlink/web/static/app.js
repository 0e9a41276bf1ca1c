// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  // Live progress of a running sync: elements with data-progress-url poll it.
  document.querySelectorAll("[data-progress-url]").forEach((box) => {
    const url = box.dataset.progressUrl;
    const bar = box.querySelector(".progress > span");
    const text = box.querySelector("[data-progress-text]");
    const tick = async () => {
      try {
        const answer = await fetch(url, { headers: { Accept: "application/json" } });
        if (!answer.ok) return;
        const state = await answer.json();
        if (bar) bar.style.width = `${state.percent}%`;
        if (text) text.textContent = state.text;
        if (state.finished) {
          if (box.dataset.reloadWhenDone) window.location.reload();
          return;
        }
      } catch (error) {
        // the next tick tries again
      }
      setTimeout(tick, 1000);
    };
    tick();
  });
  // Confirm dangerous actions.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
});
