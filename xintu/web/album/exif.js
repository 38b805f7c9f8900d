/* GPS position from a JPEG's EXIF (APP1), read in the browser so that only two numbers
   are sent to the server, never the photo. */
(function () {
  "use strict";

  function tiffGps(view, start) {
    const little = view.getUint16(start) === 0x4949;
    const u16 = (o) => view.getUint16(start + o, little);
    const u32 = (o) => view.getUint32(start + o, little);
    const ifd0 = u32(4);
    let gps = null;
    for (let i = 0, n = u16(ifd0); i < n; i++) {
      const entry = ifd0 + 2 + i * 12;
      if (u16(entry) === 0x8825) gps = u32(entry + 8);
    }
    if (gps === null) return null;
    const tags = {};
    for (let i = 0, n = u16(gps); i < n; i++) {
      const entry = gps + 2 + i * 12;
      const tag = u16(entry);
      const type = u16(entry + 2);
      if ((tag === 1 || tag === 3) && type === 2) {
        tags[tag] = String.fromCharCode(view.getUint8(start + entry + 8));
      } else if ((tag === 2 || tag === 4) && type === 5 && u32(entry + 4) === 3) {
        const at = u32(entry + 8);
        tags[tag] = [0, 1, 2].map((k) => {
          const den = u32(at + k * 8 + 4);
          return den ? u32(at + k * 8) / den : 0;
        });
      }
    }
    if (!tags[2] || !tags[4]) return null;
    let latitude = tags[2][0] + tags[2][1] / 60 + tags[2][2] / 3600;
    let longitude = tags[4][0] + tags[4][1] / 60 + tags[4][2] / 3600;
    if (tags[1] === "S") latitude = -latitude;
    if (tags[3] === "W") longitude = -longitude;
    const valid = Math.abs(latitude) <= 90 && Math.abs(longitude) <= 180;
    if (!valid || (latitude === 0 && longitude === 0)) return null;
    return { latitude: Number(latitude.toFixed(6)), longitude: Number(longitude.toFixed(6)) };
  }

  async function readGps(file) {
    try {
      const view = new DataView(await file.slice(0, 256 * 1024).arrayBuffer());
      if (view.byteLength < 4 || view.getUint16(0) !== 0xffd8) return null;
      let offset = 2;
      while (offset + 4 <= view.byteLength) {
        const marker = view.getUint16(offset);
        const size = view.getUint16(offset + 2);
        if ((marker & 0xff00) !== 0xff00 || marker === 0xffda) break;
        if (marker === 0xffe1 && view.getUint32(offset + 4) === 0x45786966) {
          return tiffGps(view, offset + 10);
        }
        offset += 2 + size;
      }
    } catch (error) {
      // A broken EXIF block just means no place for this photo.
    }
    return null;
  }

  window.XinTuExif = { readGps };
})();
