// A guided tour: one example sentence walked through the page in six stops, each lighting up the
// view it explains. Next / Back / Skip; "Take the tour" reopens it; ?tour=1 opens it on load.
// Stop 4 is done by doing: it moves on when the visitor moves the temperature slider.
(() => {
  if (window.S2STour) return;
  const byTab = (name) => [...document.querySelectorAll("button[role='tab']")].find((b) => b.textContent.trim() === name);
  const sliderOf = (label) => [...document.querySelectorAll("#controls .block")].find(
    (b) => (b.querySelector("label, span")?.textContent || "").trim().startsWith(label));
  const STOPS = [
    { title: "1 · The encoder reads the source",
      text: "The sentence is cut into pieces (subwords). A bidirectional LSTM reads them left to right and right to left, so each piece gets a vector that knows its whole sentence.",
      target: () => document.querySelector("#source-text"), enter: "translate" },
    { title: "2 · The bridge hands over",
      text: "The encoder's last forward and backward states are joined and squeezed (a linear layer and tanh) into the decoder's first state: all the decoder knows before it writes a word. The LSTM tab draws it.",
      target: () => byTab("LSTM") },
    { title: "3 · The first step's softmax",
      text: "At each step the decoder scores every token it knows and a softmax turns the scores into probabilities. This chart is the first step: the chosen token is marked, the rest of the vocabulary is one bar.",
      target: () => document.querySelector("#live-step") },
    { title: "4 · Temperature reshapes it",
      text: "Choose 'sample' as the method, then move the Temperature slider: below 1 the distribution sharpens, above 1 it flattens. The chart redraws as you drag. (Moving it takes you on.)",
      target: () => sliderOf("Temperature") || document.querySelector("#controls"), waitFor: "temperature" },
    { title: "5 · Beam search keeps k hypotheses",
      text: "Instead of one guess per step, beam search keeps the k best partial translations and returns the best complete one. The Tree tab shows what it kept (blue), finished (green) and dropped (grey).",
      target: () => byTab("Tree") },
    { title: "6 · Attention shows where it looked",
      text: "For every word it wrote, the decoder weighed the source pieces: the Attention tab shows those weights, a row per output word. That's the tour; the tabs' own notes say more.",
      target: () => byTab("Attention") },
  ];
  let index = -1, card = null, lit = null;

  function style() {
    if (document.getElementById("s2s-tour-style")) return;
    const css = document.createElement("style");
    css.id = "s2s-tour-style";
    css.textContent = `
      #s2s-tour { position: fixed; right: 16px; bottom: 16px; z-index: 1000; max-width: 380px; padding: 14px 16px;
        background: #fff; color: #111; border: 2px solid #f59e0b; border-radius: 10px; box-shadow: 0 6px 24px #0004;
        font: 14px/1.45 sans-serif; }
      #s2s-tour h3 { margin: 0 0 6px; font-size: 15px; }
      #s2s-tour .s2s-tour-buttons { display: flex; gap: 8px; justify-content: flex-end; margin-top: 10px; }
      #s2s-tour button { padding: 4px 10px; border: 1px solid #d1d5db; border-radius: 6px; background: #f9fafb; cursor: pointer; }
      #s2s-tour button.s2s-next { background: #f59e0b; border-color: #f59e0b; color: #111; font-weight: 600; }
      .s2s-tour-lit { outline: 3px solid #f59e0b !important; outline-offset: 3px; border-radius: 6px; }
      @media (max-width: 640px) { #s2s-tour { left: 8px; right: 8px; bottom: 8px; max-width: none; } }`;
    document.head.appendChild(css);
  }

  function translateExample() {
    const box = document.querySelector("#source-text textarea");
    if (!box) return;
    if (!box.value.trim()) {
      box.value = box.placeholder;
      box.dispatchEvent(new Event("input", { bubbles: true }));
    }
    setTimeout(() => document.querySelector("#translate")?.click(), 50);
  }

  function show(i) {
    index = Math.max(0, Math.min(i, STOPS.length - 1));
    const stop = STOPS[index];
    if (lit) lit.classList.remove("s2s-tour-lit");
    lit = stop.target();
    if (lit) {
      lit.classList.add("s2s-tour-lit");
      lit.scrollIntoView({ block: "center", behavior: "instant" });
    }
    if (stop.enter === "translate") translateExample();
    card.querySelector("h3").textContent = stop.title;
    card.querySelector("p").textContent = stop.text;
    card.querySelector(".s2s-back").disabled = index === 0;
    card.querySelector(".s2s-next").textContent = index === STOPS.length - 1 ? "Finish" : "Next";
    card.dataset.stop = String(index + 1);
  }

  function stop() {
    if (lit) lit.classList.remove("s2s-tour-lit");
    lit = null;
    card?.remove();
    card = null;
    index = -1;
  }

  function start() {
    style();
    stop();
    card = document.createElement("div");
    card.id = "s2s-tour";
    card.setAttribute("role", "dialog");
    card.setAttribute("aria-label", "Guided tour");
    card.innerHTML = "<h3></h3><p></p><div class='s2s-tour-buttons'><button class='s2s-skip'>Skip</button>"
      + "<button class='s2s-back'>Back</button><button class='s2s-next'>Next</button></div>";
    card.querySelector(".s2s-skip").onclick = stop;
    card.querySelector(".s2s-back").onclick = () => show(index - 1);
    card.querySelector(".s2s-next").onclick = () => (index === STOPS.length - 1 ? stop() : show(index + 1));
    document.body.appendChild(card);
    show(0);
  }

  // stop 4 is done by doing: a move of the temperature slider takes the visitor on
  function moved(name) {
    if (card && STOPS[index]?.waitFor === name) show(index + 1);
  }

  window.S2STour = { start, stop, show, moved, stops: STOPS.length };
  if (new URLSearchParams(window.location.search).get("tour") === "1") setTimeout(start, 300);
})();
