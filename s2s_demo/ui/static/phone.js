// On a phone the controls are a sheet fixed at the bottom of the screen: after a translation the
// page scrolls the translation to the top of the screen, so neither the keyboard's scroll
// position nor the sheet hides the result.
(() => {
  if (window.S2SPhone) return;
  window.S2SPhone = true;
  const PHONE = "(max-width: 640px)";
  let last = "";
  const check = () => {
    const box = document.querySelector("#translation");
    if (!box || !window.matchMedia(PHONE).matches) return;
    const text = box.innerText.trim();
    if (text && text !== last && !box.querySelector(".empty")) {
      last = text;
      box.scrollIntoView({ block: "start", behavior: "instant" });
    }
  };
  new MutationObserver(check).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
