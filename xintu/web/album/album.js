/* 芯图相册: hash originals here, ask the server which it knows, upload only the rest
   (compressed to ~400 KB), and show the album by category (DESIGN §2). */
(function () {
  "use strict";

  const API = "/api/v1";
  const CHECK_CHUNK = 1000;
  const BATCH = 20;
  const LONG_EDGE = 1024;
  const MAX_UPLOAD = 400 * 1024;
  const PARALLEL_UPLOADS = 3;
  const PARALLEL_HASHES = 4;
  const PARALLEL_COMPRESS = 2;
  const COLOURS = {
    social_activities: "#e5534b", pets: "#2da44e", single_person: "#1f6feb",
    foods: "#d4a72c", travel_scenery: "#1b9aaa", screenshot: "#a371f7",
    idcard: "#6e7781", other: "#57606a",
  };

  const $ = (id) => document.getElementById(id);
  const photos = new Map(); // image_hash → photo
  let categories = [];
  let geoAvailable = null; // unknown until the first call
  let busy = Promise.resolve();
  const stats = { photos: 0, hits: 0, uploaded: 0, originalBytes: 0, sentBytes: 0,
                  avoidedBytes: 0, skipped: 0, failed: 0, requests: 0 };

  function deviceId() {
    let id = localStorage.getItem("xintu-device-id");
    if (!id) {
      id = "web-" + Math.random().toString(36).slice(2, 12);
      localStorage.setItem("xintu-device-id", id);
    }
    return id;
  }

  function formatBytes(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(2) + " GB";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
    if (n >= 1e3) return (n / 1e3).toFixed(0) + " KB";
    return n + " B";
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function request(path, init, attempts = 4) {
    init.headers = Object.assign({ "X-User-ID": deviceId() }, init.headers || {});
    for (let attempt = 0; ; attempt++) {
      let response = null;
      try {
        response = await fetch(API + path, init);
      } catch (error) {
        if (attempt + 1 >= attempts) throw error;
      }
      if (response && response.status !== 429 && response.status < 500) return response;
      if (response && attempt + 1 >= attempts) return response;
      const retryAfter = response && Number(response.headers.get("Retry-After"));
      await sleep(retryAfter ? retryAfter * 1000 : 500 * 2 ** attempt * (0.5 + Math.random() / 2));
    }
  }

  async function postJson(path, body) {
    const response = await request(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    return response;
  }

  /* -- progress and numbers --------------------------------------------------------- */

  function setProgress(phase, done, total) {
    $("progress").hidden = false;
    $("phase").textContent = phase;
    $("progress-count").textContent = total ? `${done} / ${total}` : "";
    $("bar-fill").style.width = total ? `${Math.round((done / total) * 100)}%` : "100%";
  }

  function renderStats() {
    $("stats").hidden = false;
    $("stat-photos").textContent = stats.photos;
    $("stat-hits").textContent = stats.hits;
    $("stat-uploaded").textContent = stats.uploaded;
    $("stat-saved").textContent = formatBytes(Math.max(0, stats.originalBytes - stats.sentBytes));
    const parts = [`原图共 ${formatBytes(stats.originalBytes)}，实际上传 ${formatBytes(stats.sentBytes)}`];
    if (stats.hits) parts.push(`${stats.hits} 张已识别过，省下 ${formatBytes(stats.avoidedBytes)} 上传`);
    if (stats.skipped) parts.push(`跳过 ${stats.skipped} 个非图片文件`);
    if (stats.failed) parts.push(`${stats.failed} 张未能识别`);
    $("stat-detail").textContent = parts.join(" · ");
    for (const [key, value] of Object.entries(stats)) document.body.dataset[key] = value;
  }

  /* -- files in --------------------------------------------------------------------- */

  const HEIF_BRANDS = ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif"];

  async function sniff(file) {
    const b = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    const ascii = (from, to) => String.fromCharCode(...b.slice(from, to));
    if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
    if (b[0] === 0x89 && ascii(1, 4) === "PNG") return "png";
    if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
    if (ascii(0, 4) === "GIF8") return "gif";
    if (ascii(0, 2) === "BM" && file.size >= 26) return "bmp";
    if (ascii(4, 8) === "ftyp" && HEIF_BRANDS.includes(ascii(8, 12))) return "heif";
    return null;
  }

  async function filesOfEntry(entry) {
    if (entry.isFile) {
      return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
    }
    if (!entry.isDirectory) return [];
    const reader = entry.createReader();
    const files = [];
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) {
        if (!child.name.startsWith(".")) files.push(...(await filesOfEntry(child)));
      }
    }
    return files;
  }

  async function pool(items, size, work) {
    let next = 0;
    async function worker() {
      while (next < items.length) {
        const index = next++;
        await work(items[index], index);
      }
    }
    await Promise.all(Array.from({ length: Math.min(size, items.length) }, worker));
  }

  /* -- compressing ------------------------------------------------------------------ */

  async function compress(photo) {
    const file = photo.file;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (error) {
      // HEIC is not decodable outside Safari, but the server reads it; anything else
      // the browser cannot decode is broken and not worth an upload.
      return photo.format === "heif" && file.size <= 10 * 1024 * 1024 ? file : null;
    }
    if (photo.format === "jpeg" && file.size <= MAX_UPLOAD &&
        Math.max(bitmap.width, bitmap.height) <= LONG_EDGE) {
      bitmap.close();
      return file;
    }
    const scale = Math.min(1, LONG_EDGE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    const context = canvas.getContext("2d");
    context.fillStyle = "#fff";
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    let blob = null;
    for (const quality of [0.85, 0.75, 0.65, 0.55, 0.45, 0.35]) {
      blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
      if (blob && blob.size <= MAX_UPLOAD) break;
    }
    return blob;
  }

  /* -- the album -------------------------------------------------------------------- */

  function buildSections() {
    const album = $("album");
    album.textContent = "";
    for (const c of categories) {
      const section = document.createElement("section");
      section.className = "category";
      section.id = `cat-${c.category}`;
      section.dataset.category = c.category;
      section.hidden = true;
      section.style.setProperty("--accent", COLOURS[c.category] || "#57606a");
      section.innerHTML =
        `<h2><span class="dot"></span><span class="name"></span><span class="count">0</span></h2>` +
        `<div class="grid"></div>`;
      section.querySelector(".name").textContent = c.category_name;
      album.appendChild(section);
    }
  }

  function renderChips() {
    const chips = $("chips");
    chips.textContent = "";
    for (const c of categories) {
      const count = document.querySelectorAll(`#cat-${c.category} .card`).length;
      if (!count) continue;
      const chip = document.createElement("a");
      chip.href = `#cat-${c.category}`;
      chip.className = "chip";
      chip.style.setProperty("--accent", COLOURS[c.category] || "#57606a");
      chip.textContent = `${c.category_name} ${count}`;
      chips.appendChild(chip);
    }
    chips.hidden = !chips.children.length;
  }

  function placeCard(photo) {
    if (photo.card) photo.card.remove();
    const section = $(`cat-${photo.data.category}`) || $("cat-other");
    const card = document.createElement("figure");
    card.className = "card";
    card.dataset.hash = photo.hash;
    card.dataset.category = photo.data.category;
    card.dataset.source = photo.source;
    card.title = `${photo.file.name}\n${photo.data.category_name} · 置信度 ${Math.round(
      (photo.data.confidence || 0) * 100)}%` + (photo.data.description ? `\n${photo.data.description}` : "");
    if (photo.format === "heif") {
      const placeholder = document.createElement("div");
      placeholder.className = "placeholder";
      placeholder.textContent = "HEIC";
      card.appendChild(placeholder);
    } else {
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = photo.data.description || photo.data.category_name;
      img.src = photo.url || (photo.url = URL.createObjectURL(photo.file));
      card.appendChild(img);
    }
    const badge = document.createElement("span");
    badge.className = `badge ${photo.source}`;
    badge.textContent = photo.source === "cache" ? "免上传" : "已上传";
    card.appendChild(badge);
    const caption = document.createElement("figcaption");
    caption.className = "place";
    caption.textContent = photo.place || "";
    caption.hidden = !photo.place;
    card.appendChild(caption);
    if (photo.copies > 1) {
      const copies = document.createElement("span");
      copies.className = "copies";
      copies.textContent = `×${photo.copies}`;
      card.appendChild(copies);
    }
    section.querySelector(".grid").appendChild(card);
    photo.card = card;
    section.hidden = false;
    section.querySelector(".count").textContent = section.querySelectorAll(".card").length;
  }

  function classified(photo, data, source) {
    photo.data = data;
    photo.source = source;
    placeCard(photo);
  }

  function failed(photo, message) {
    stats.failed += 1;
    $("failed").hidden = false;
    const item = document.createElement("li");
    item.textContent = `${photo.file.name}：${message}`;
    $("failed-list").appendChild(item);
  }

  /* -- places ----------------------------------------------------------------------- */

  async function showPlaces(batch) {
    if (geoAvailable === false) return;
    const located = batch.filter((photo) => photo.gps && photo.data);
    for (let start = 0; start < located.length; start += 1000) {
      const chunk = located.slice(start, start + 1000);
      let response;
      try {
        response = await postJson("/geo/locate/batch", { points: chunk.map((p) => p.gps) });
      } catch (error) {
        return;
      }
      if (response.status === 404 || response.status === 405 || response.status === 501) {
        geoAvailable = false;
        return;
      }
      if (!response.ok) return;
      geoAvailable = true;
      const body = await response.json();
      (body.items || []).forEach((item, index) => {
        const photo = chunk[index];
        if (!photo || !item) return;
        photo.place = item.display_name || [item.province, item.city, item.district]
          .filter(Boolean).join(" ");
        const caption = photo.card && photo.card.querySelector(".place");
        if (caption && photo.place) {
          caption.textContent = photo.place;
          caption.hidden = false;
        }
      });
    }
  }

  /* -- the flow --------------------------------------------------------------------- */

  async function handle(fileList) {
    const files = Array.from(fileList);
    if (!files.length) return;
    $("message").textContent = "";
    const fresh = [];
    const batch = new Set();
    let done = 0;
    setProgress("计算指纹", 0, files.length);
    await pool(files, PARALLEL_HASHES, async (file) => {
      const format = await sniff(file).catch(() => null);
      if (!format) {
        stats.skipped += 1;
      } else {
        const hash = await XinTuHash.sha256Hex(await file.arrayBuffer());
        stats.photos += 1;
        stats.originalBytes += file.size;
        let photo = photos.get(hash);
        if (photo) {
          photo.copies += 1;
          if (photo.data) {
            stats.hits += 1;
            stats.avoidedBytes += file.size;
            placeCard(photo);
          }
        } else {
          photo = { hash, file, format, copies: 1, data: null, source: null, place: null };
          photos.set(hash, photo);
          fresh.push(photo);
          photo.gps = format === "jpeg" ? await XinTuExif.readGps(file) : null;
        }
        batch.add(photo);
      }
      setProgress("计算指纹", ++done, files.length);
    });
    renderStats();

    const misses = [];
    for (let start = 0; start < fresh.length; start += CHECK_CHUNK) {
      const chunk = fresh.slice(start, start + CHECK_CHUNK);
      setProgress("查询已识别的照片", start, fresh.length);
      const response = await postJson("/classify/batch-check-cache", {
        image_hashes: chunk.map((photo) => photo.hash), user_id: deviceId(),
      });
      if (!response.ok) {
        $("message").textContent = `服务器暂时不可用（${response.status}），请稍后再试`;
        misses.push(...chunk);
        continue;
      }
      const body = await response.json();
      body.items.forEach((item, index) => {
        const photo = chunk[index];
        if (item.cached && item.data) {
          stats.hits += photo.copies;
          stats.avoidedBytes += photo.file.size * photo.copies;
          classified(photo, item.data, "cache");
        } else {
          misses.push(photo);
        }
      });
    }
    renderStats();
    renderChips();

    let uploadedDone = 0;
    const queue = [];
    const total = misses.length;
    setProgress("压缩并上传", 0, total);

    async function upload(items) {
      const form = new FormData();
      for (const { photo, blob } of items) {
        form.append("images", blob, photo.file.name.replace(/\.[^.]*$/, "") + ".jpg");
      }
      form.append("image_hashes", JSON.stringify(items.map(({ photo }) => photo.hash)));
      let body = null;
      try {
        const response = await request("/classify/batch", { method: "POST", body: form });
        stats.requests += 1;
        body = response.ok ? await response.json() : null;
        if (!body) $("message").textContent = `上传失败（${response.status}）`;
      } catch (error) {
        $("message").textContent = "网络错误，部分照片未能上传";
      }
      items.forEach(({ photo, blob }, index) => {
        stats.uploaded += 1;
        stats.sentBytes += blob.size;
        const item = body && body.items.find((entry) => entry.index === index);
        if (item && item.success && item.data) classified(photo, item.data, "upload");
        else failed(photo, (item && item.error) || "上传失败");
      });
      uploadedDone += items.length;
      setProgress("压缩并上传", uploadedDone, total);
      renderStats();
      renderChips();
    }

    const inFlight = new Set();
    async function flush(force) {
      while (queue.length >= BATCH || (force && queue.length)) {
        while (inFlight.size >= PARALLEL_UPLOADS) await Promise.race(inFlight);
        const task = upload(queue.splice(0, BATCH));
        inFlight.add(task);
        task.finally(() => inFlight.delete(task));
      }
    }

    await pool(misses, PARALLEL_COMPRESS, async (photo) => {
      const blob = await compress(photo);
      if (!blob) {
        failed(photo, "无法读取这张图片");
        uploadedDone += 1;
        return;
      }
      queue.push({ photo, blob });
      await flush(false);
    });
    await flush(true);
    await Promise.all(inFlight);

    setProgress("正在查找拍摄地点", 0, 0);
    await showPlaces(Array.from(batch));
    renderStats();
    renderChips();
    const sorted = Array.from(batch).filter((photo) => photo.data).length;
    setProgress(`完成：${sorted} 张照片已分类`, 1, 1);
    document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
  }

  function enqueue(files) {
    busy = busy.then(() => handle(files)).catch((error) => {
      $("message").textContent = `出错了：${error.message || error}`;
      document.body.dataset.error = String(error);
    });
  }

  async function start() {
    try {
      const response = await fetch(API + "/categories");
      categories = (await response.json()).categories;
    } catch (error) {
      $("message").textContent = "无法连接服务器";
      return;
    }
    buildSections();
    document.body.dataset.ready = "1";
    for (const id of ["pick-files", "pick-folder"]) {
      $(id).addEventListener("change", (event) => {
        enqueue(Array.from(event.target.files));
        event.target.value = "";
      });
    }
    const drop = $("drop");
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", async (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      const entries = Array.from(event.dataTransfer.items || [])
        .map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
      if (entries.length) {
        const files = [];
        for (const entry of entries) files.push(...(await filesOfEntry(entry)));
        enqueue(files);
      } else {
        enqueue(Array.from(event.dataTransfer.files));
      }
    });
  }

  start();
})();
