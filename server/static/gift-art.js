// Gift pictures: small hand-written SVGs (viewBox 0 0 100 100), one per gift of the default
// catalog, and one per tier for gifts this file does not know (custom catalogs). No external
// assets and no style attributes (the pages' Content-Security-Policy forbids inline styles);
// the motion is CSS (alerts.css), chosen by tier.

const svg = (body) =>
  `<svg class="gift-art" viewBox="0 0 100 100" xmlns="http://www.w3.org/2000/svg" aria-hidden="true">${body}</svg>`;

const ART = {
  rose: `<path d="M50 55 L50 95" stroke="#2e7d32" stroke-width="5"/>
    <path d="M50 78 Q30 70 28 58 Q44 60 50 72" fill="#43a047"/>
    <circle cx="50" cy="38" r="22" fill="#e53950"/>
    <path d="M34 34 Q50 14 66 34 Q58 28 50 40 Q42 28 34 34Z" fill="#b71c3a"/>
    <path d="M40 44 Q50 54 60 44" stroke="#8e0f2b" stroke-width="3" fill="none"/>`,
  tiktok: `<circle cx="50" cy="50" r="44" fill="#111"/>
    <path d="M56 22 L56 62 A12 12 0 1 1 44 50" stroke="#25f4ee" stroke-width="9" fill="none" transform="translate(-3 -2)"/>
    <path d="M56 22 L56 62 A12 12 0 1 1 44 50" stroke="#fe2c55" stroke-width="9" fill="none" transform="translate(3 2)"/>
    <path d="M56 22 L56 62 A12 12 0 1 1 44 50 M56 22 Q60 36 74 36" stroke="#fff" stroke-width="9" fill="none"/>`,
  ice_cream: `<path d="M32 48 L50 94 L68 48Z" fill="#e0a458"/>
    <path d="M38 56 L62 56 M42 68 L58 68" stroke="#b57b35" stroke-width="3"/>
    <circle cx="40" cy="40" r="15" fill="#ffb3c7"/><circle cx="60" cy="40" r="15" fill="#b3e5fc"/>
    <circle cx="50" cy="26" r="15" fill="#fff3b0"/><circle cx="50" cy="9" r="5" fill="#e53950"/>`,
  panda: `<circle cx="26" cy="26" r="13" fill="#222"/><circle cx="74" cy="26" r="13" fill="#222"/>
    <circle cx="50" cy="55" r="38" fill="#fafafa" stroke="#222" stroke-width="3"/>
    <ellipse cx="36" cy="50" rx="9" ry="12" fill="#222"/><ellipse cx="64" cy="50" rx="9" ry="12" fill="#222"/>
    <circle cx="37" cy="49" r="3.5" fill="#fff"/><circle cx="63" cy="49" r="3.5" fill="#fff"/>
    <ellipse cx="50" cy="67" rx="7" ry="5" fill="#222"/><path d="M42 77 Q50 83 58 77" stroke="#222" stroke-width="3" fill="none"/>`,
  love_bang: `<path d="M50 88 C10 60 8 30 28 20 C40 14 48 22 50 30 C52 22 60 14 72 20 C92 30 90 60 50 88Z" fill="#ff2d6f"/>
    <path d="M30 30 Q34 24 42 26" stroke="#ffd1e0" stroke-width="5" fill="none"/>
    <path d="M8 12 L16 20 M92 12 L84 20 M50 2 L50 10" stroke="#ffd54f" stroke-width="4"/>`,
  sun_cream: `<g stroke="#ffb300" stroke-width="6"><path d="M50 4 L50 16 M50 84 L50 96 M4 50 L16 50 M84 50 L96 50"/>
    <path d="M17 17 L26 26 M74 74 L83 83 M83 17 L74 26 M26 74 L17 83"/></g>
    <circle cx="50" cy="50" r="26" fill="#ffd54f"/><circle cx="42" cy="46" r="3" fill="#6d4c00"/>
    <circle cx="58" cy="46" r="3" fill="#6d4c00"/><path d="M40 58 Q50 66 60 58" stroke="#6d4c00" stroke-width="3" fill="none"/>`,
  rainbow_puke: `<g fill="none" stroke-width="7"><path d="M10 80 A40 40 0 0 1 90 80" stroke="#e53935"/>
    <path d="M17 80 A33 33 0 0 1 83 80" stroke="#fb8c00"/><path d="M24 80 A26 26 0 0 1 76 80" stroke="#fdd835"/>
    <path d="M31 80 A19 19 0 0 1 69 80" stroke="#43a047"/><path d="M38 80 A12 12 0 0 1 62 80" stroke="#1e88e5"/></g>
    <circle cx="14" cy="84" r="9" fill="#fff"/><circle cx="86" cy="84" r="9" fill="#fff"/>`,
  concert: `<rect x="10" y="70" width="80" height="20" rx="3" fill="#5e35b1"/>
    <path d="M20 70 L38 10 M80 70 L62 10" stroke="#fff59d" stroke-width="4" opacity="0.7"/>
    <rect x="44" y="22" width="12" height="26" rx="6" fill="#cfd8dc"/><path d="M50 48 L50 70" stroke="#90a4ae" stroke-width="4"/>
    <path d="M14 40 L18 34 L22 40 M76 36 L80 30 L84 36" stroke="#ff4081" stroke-width="3" fill="none"/>`,
  im_very_rich: `<ellipse cx="50" cy="82" rx="30" ry="8" fill="#f9a825"/><ellipse cx="50" cy="74" rx="30" ry="8" fill="#fbc02d"/>
    <ellipse cx="50" cy="66" rx="30" ry="8" fill="#fdd835"/>
    <path d="M30 20 L70 20 L78 50 L22 50Z" fill="#43a047"/><text x="50" y="44" font-size="24" font-weight="bold"
    text-anchor="middle" fill="#e8f5e9" font-family="sans-serif">$</text>`,
  drama_queen: `<path d="M14 74 L10 30 L32 48 L50 18 L68 48 L90 30 L86 74Z" fill="#ffca28" stroke="#f57f17" stroke-width="3"/>
    <rect x="14" y="74" width="72" height="12" rx="3" fill="#f9a825"/>
    <circle cx="50" cy="58" r="7" fill="#e53950"/><circle cx="30" cy="62" r="5" fill="#1e88e5"/><circle cx="70" cy="62" r="5" fill="#43a047"/>`,
  interstellar: `<circle cx="50" cy="50" r="46" fill="#0d1b3e"/>
    <path d="M18 70 Q50 40 84 24" stroke="#80deea" stroke-width="6" fill="none"/><circle cx="84" cy="24" r="8" fill="#e0f7fa"/>
    <circle cx="26" cy="28" r="2" fill="#fff"/><circle cx="66" cy="76" r="2" fill="#fff"/><circle cx="40" cy="84" r="1.5" fill="#fff"/>`,
  planet: `<circle cx="50" cy="50" r="28" fill="#7e57c2"/><path d="M30 40 Q50 48 72 38" stroke="#b39ddb" stroke-width="5" fill="none"/>
    <ellipse cx="50" cy="54" rx="46" ry="12" fill="none" stroke="#ffcc80" stroke-width="5" transform="rotate(-15 50 54)"/>`,
  rocket: `<path d="M50 6 C66 22 68 48 62 70 L38 70 C32 48 34 22 50 6Z" fill="#eceff1" stroke="#90a4ae" stroke-width="2"/>
    <circle cx="50" cy="36" r="8" fill="#29b6f6" stroke="#0277bd" stroke-width="3"/>
    <path d="M38 56 L24 74 L38 70Z M62 56 L76 74 L62 70Z" fill="#e53935"/>
    <path d="M42 72 Q50 100 58 72Z" fill="#ff9800"/><path d="M46 72 Q50 88 54 72Z" fill="#ffeb3b"/>`,
  lion: `<circle cx="50" cy="52" r="42" fill="#e65100"/><circle cx="50" cy="54" r="28" fill="#ffb74d"/>
    <circle cx="40" cy="48" r="4" fill="#3e2723"/><circle cx="60" cy="48" r="4" fill="#3e2723"/>
    <path d="M44 60 L56 60 L50 67Z" fill="#3e2723"/><path d="M40 72 Q50 78 60 72" stroke="#3e2723" stroke-width="3" fill="none"/>`,
  universe: `<circle cx="50" cy="50" r="47" fill="#1a0033"/>
    <path d="M50 50 m-30 0 a30 12 20 1 0 60 0 a30 12 20 1 0 -60 0" fill="#7c4dff" opacity="0.6"/>
    <path d="M50 50 m-22 0 a22 8 -30 1 0 44 0 a22 8 -30 1 0 -44 0" fill="#ff80ab" opacity="0.6"/>
    <circle cx="50" cy="50" r="7" fill="#fff9c4"/><circle cx="20" cy="22" r="2" fill="#fff"/>
    <circle cx="80" cy="30" r="1.5" fill="#fff"/><circle cx="72" cy="80" r="2" fill="#fff"/><circle cx="24" cy="74" r="1.5" fill="#fff"/>`,
};

// For gifts without their own picture: a badge per tier in a colour derived from the gift id.
const TIER_ART = {
  1: (hue) => `<circle cx="50" cy="50" r="40" fill="hsl(${hue} 80% 55%)"/>
    <path d="M50 22 L58 42 L80 42 L62 55 L69 77 L50 64 L31 77 L38 55 L20 42 L42 42Z" fill="#fff"/>`,
  2: (hue) => `<path d="M50 90 C10 62 8 30 30 20 C42 15 48 24 50 30 C52 24 58 15 70 20 C92 30 90 62 50 90Z"
    fill="hsl(${hue} 85% 55%)"/>`,
  3: (hue) => `<path d="M50 8 L88 38 L50 92 L12 38Z" fill="hsl(${hue} 80% 60%)" stroke="#fff" stroke-width="3"/>
    <path d="M12 38 L88 38 M50 8 L34 38 L50 92 L66 38Z" stroke="#fff" stroke-width="2" fill="none"/>`,
  4: (hue) => `<circle cx="50" cy="50" r="46" fill="hsl(${hue} 70% 25%)"/>
    <circle cx="50" cy="50" r="24" fill="hsl(${hue} 90% 65%)"/><circle cx="50" cy="50" r="10" fill="#fff"/>`,
};

function hueOf(id) {
  let hash = 0;
  for (const ch of id) hash = (hash * 31 + ch.charCodeAt(0)) % 360;
  return hash;
}

/** SVG markup for a gift ({id, tier}); unknown ids get their tier's badge. */
export function giftArt(gift) {
  const tier = Math.min(4, Math.max(1, gift.tier || 1));
  return svg(ART[gift.id] || TIER_ART[tier](hueOf(gift.id)));
}
