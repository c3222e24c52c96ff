// Links a timeline bar and its trace row: hovering one highlights the other.
document.addEventListener("DOMContentLoaded", () => {
  const pairs = new Map();
  for (const el of document.querySelectorAll("[data-span]")) {
    const id = el.dataset.span;
    if (!pairs.has(id)) pairs.set(id, []);
    pairs.get(id).push(el);
  }
  for (const els of pairs.values()) {
    for (const el of els) {
      el.addEventListener("mouseenter", () => els.forEach((e) => e.classList.add("hot")));
      el.addEventListener("mouseleave", () => els.forEach((e) => e.classList.remove("hot")));
    }
  }
});
