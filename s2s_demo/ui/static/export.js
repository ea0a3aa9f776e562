// Every Plotly chart on the page downloads as SVG as well as PNG: an "SVG" button beside the
// modebar's camera (which downloads PNG). Plotly's camera reads the chart's
// toImageButtonOptions, so the SVG button sets the format for one click and clicks the camera.
(() => {
  if (window.S2SExport) return;
  window.S2SExport = true;
  const addButton = (chart) => {
    const camera = chart.querySelector(".modebar-btn[data-title*='png' i]");
    if (!camera || camera.parentNode.querySelector(".s2s-svg")) return;
    const button = document.createElement("a");
    button.className = "modebar-btn s2s-svg";
    button.setAttribute("data-title", "Download plot as an svg");
    button.setAttribute("rel", "tooltip");
    button.textContent = "SVG";
    button.style.cssText = "font: 600 10px sans-serif; padding: 3px 4px; cursor: pointer;";
    button.addEventListener("click", (event) => {
      event.preventDefault();
      const context = chart._context || {};
      const before = context.toImageButtonOptions;
      context.toImageButtonOptions = Object.assign({}, before, { format: "svg" });
      camera.click();
      setTimeout(() => { context.toImageButtonOptions = before; }, 0);
    });
    camera.parentNode.insertBefore(button, camera.nextSibling);
  };
  const scan = () => document.querySelectorAll(".js-plotly-plot").forEach(addButton);
  new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  scan();
})();
