//! The GPU: one device, its pipelines and the text atlas, turning scenes into pixels.

use crate::Error;
use crate::scene::{Item, Pipe, Scene, Vertex};
use crate::text::Fonts;
use wgpu::util::DeviceExt;

const FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
const DEPTH: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
/// Most pixels in one frame (8K): with 4× MSAA colour and depth that is about 1 GiB of
/// targets, which is as much as one request may hold.
const MAX_PIXELS: u64 = 7680 * 4320;

const SHADER: &str = r"
struct Out {
    @builtin(position) pos: vec4<f32>,
    @location(0) color: vec4<f32>,
};

@vertex
fn vs_color(@location(0) pos: vec4<f32>, @location(1) color: vec4<f32>) -> Out {
    var o: Out;
    o.pos = pos;
    o.color = color;
    return o;
}

@fragment
fn fs_color(v: Out) -> @location(0) vec4<f32> {
    return v.color;
}

struct ImageOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@group(0) @binding(0) var image: texture_2d<f32>;
@group(0) @binding(1) var smooth_sampler: sampler;

@vertex
fn vs_image(@location(0) pos: vec4<f32>, @location(1) uv: vec2<f32>) -> ImageOut {
    var o: ImageOut;
    o.pos = pos;
    o.uv = uv;
    return o;
}

@fragment
fn fs_image(v: ImageOut) -> @location(0) vec4<f32> {
    return textureSample(image, smooth_sampler, v.uv);
}
";

#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ImageVertex {
    pos: [f32; 4],
    uv: [f32; 2],
}

/// A finished frame: RGBA8 pixels, row after row, without padding.
#[derive(Debug, Clone)]
pub struct Frame {
    /// pixel columns
    pub width: u32,
    /// pixel rows
    pub height: u32,
    /// straight RGBA8 (the frame is opaque when its background is)
    pub rgba: Vec<u8>,
    /// what the style or layout asked for that was not drawn, one sentence each
    pub warnings: Vec<String>,
    /// time spent building the scene on the CPU (features, tessellation, text shaping)
    pub prepare: std::time::Duration,
    /// time spent on the GPU: upload, drawing, readback
    pub draw: std::time::Duration,
    /// the sources drawn and when their data was acquired (Data art. 27): written at the
    /// foot of the image and into a PNG's `Source` text chunk
    pub credit: String,
}

/// Options of the renderer.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// MSAA samples per pixel (1 or 4)
    pub samples: u32,
    /// largest frame side accepted, in pixels
    pub max_side: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            samples: 4,
            max_side: 8192,
        }
    }
}

struct Targets {
    size: (u32, u32),
    msaa: Option<wgpu::TextureView>,
    resolve: wgpu::Texture,
    resolve_view: wgpu::TextureView,
    depth: wgpu::TextureView,
    readback: wgpu::Buffer,
    row: u32,
}

/// A headless wgpu device with the pipelines the renderer needs. Create it once: device
/// creation costs tens of milliseconds and the glyph atlas warms up across frames.
pub struct Renderer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    samples: u32,
    max_side: u32,
    flat: wgpu::RenderPipeline,
    depth: wgpu::RenderPipeline,
    image: wgpu::RenderPipeline,
    image_layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    pub(crate) fonts: Fonts,
    swash: glyphon::SwashCache,
    atlas: glyphon::TextAtlas,
    text: glyphon::TextRenderer,
    viewport: glyphon::Viewport,
    targets: Option<Targets>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Renderer {
    /// Opens the best adapter wgpu finds: a GPU when there is one, Mesa's CPU drivers
    /// (lavapipe through Vulkan, llvmpipe through EGL) otherwise. `WGPU_BACKEND` narrows the
    /// search (`vulkan`, `gl`).
    pub fn new(options: Options) -> Result<Renderer, Error> {
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        Self::with_backends(backends, options)
    }

    /// Opens an adapter among `backends` only.
    pub fn with_backends(backends: wgpu::Backends, options: Options) -> Result<Renderer, Error> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            apply_limit_buckets: false,
        }))
        .map_err(|e| {
            Error::NoAdapter(format!(
                "{e} (backends {backends:?}); install a GPU driver or Mesa's CPU drivers \
                 (Debian: mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri)"
            ))
        })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let max_side = options.max_side.min(limits.max_texture_dimension_2d);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("citytwin renderer"),
            required_features: wgpu::Features::empty(),
            required_limits: wgpu::Limits {
                max_texture_dimension_2d: max_side,
                max_buffer_size: limits.max_buffer_size,
                ..wgpu::Limits::downlevel_defaults()
            },
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::NoAdapter(format!("{} refused a device: {e}", info.name)))?;
        let flags = adapter.get_texture_format_features(FORMAT).flags;
        let samples = if options.samples > 1 && flags.sample_count_supported(options.samples) {
            options.samples
        } else {
            if options.samples > 1 {
                tracing::warn!(adapter = %info.name, samples = options.samples, "MSAA not supported; drawing without");
            }
            1
        };
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("citytwin shaders"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let multisample = wgpu::MultisampleState {
            count: samples,
            mask: !0,
            alpha_to_coverage_enabled: false,
        };
        let depth_state = |test: bool| wgpu::DepthStencilState {
            format: DEPTH,
            depth_write_enabled: Some(test),
            depth_compare: Some(if test {
                wgpu::CompareFunction::LessEqual
            } else {
                wgpu::CompareFunction::Always
            }),
            stencil: wgpu::StencilState::default(),
            bias: wgpu::DepthBiasState::default(),
        };
        let target = [Some(wgpu::ColorTargetState {
            format: FORMAT,
            blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
            write_mask: wgpu::ColorWrites::ALL,
        })];
        let color_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("colour"),
            bind_group_layouts: &[],
            immediate_size: 0,
        });
        let vertex_layout = [Some(wgpu::VertexBufferLayout {
            array_stride: std::mem::size_of::<Vertex>() as u64,
            step_mode: wgpu::VertexStepMode::Vertex,
            attributes: &wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x4],
        })];
        let pipeline = |label: &str, test: bool| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&color_layout),
                vertex: wgpu::VertexState {
                    module: &shader,
                    entry_point: Some("vs_color"),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    buffers: &vertex_layout,
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: Some(depth_state(test)),
                multisample,
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some("fs_color"),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    targets: &target,
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let flat = pipeline("flat", false);
        let depth = pipeline("extrusions", true);
        let image_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("image"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let image_pipeline_layout =
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("image"),
                bind_group_layouts: &[Some(&image_layout)],
                immediate_size: 0,
            });
        let image = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("image"),
            layout: Some(&image_pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_image"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: std::mem::size_of::<ImageVertex>() as u64,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x2],
                })],
            },
            primitive: wgpu::PrimitiveState {
                topology: wgpu::PrimitiveTopology::TriangleStrip,
                ..wgpu::PrimitiveState::default()
            },
            depth_stencil: Some(depth_state(false)),
            multisample,
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_image"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                targets: &target,
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("image"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..wgpu::SamplerDescriptor::default()
        });
        let cache = glyphon::Cache::new(&device);
        let mut atlas = glyphon::TextAtlas::new(&device, &queue, &cache, FORMAT);
        let text =
            glyphon::TextRenderer::new(&mut atlas, &device, multisample, Some(depth_state(false)));
        let viewport = glyphon::Viewport::new(&device, &cache);
        tracing::info!(adapter = %info.name, backend = ?info.backend, kind = ?info.device_type, samples, "renderer ready");
        Ok(Renderer {
            device,
            queue,
            info,
            samples,
            max_side,
            flat,
            depth,
            image,
            image_layout,
            sampler,
            fonts: Fonts::new(),
            swash: glyphon::SwashCache::new(),
            atlas,
            text,
            viewport,
            targets: None,
        })
    }

    /// The adapter in words, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) via Vulkan (Cpu), 4× MSAA`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} via {:?} ({:?}), {}× MSAA",
            self.info.name, self.info.backend, self.info.device_type, self.samples
        )
    }

    /// Whether the adapter is a CPU driver (lavapipe, llvmpipe).
    #[must_use]
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Largest frame side accepted.
    #[must_use]
    pub fn max_side(&self) -> u32 {
        self.max_side
    }

    /// Checks a frame size before any work is done.
    pub fn check_size(&self, width: u32, height: u32) -> Result<(), Error> {
        if width == 0 || height == 0 || width > self.max_side || height > self.max_side {
            return Err(Error::Size(format!(
                "{width}×{height} pixels: each side must be 1 to {}",
                self.max_side
            )));
        }
        if u64::from(width) * u64::from(height) > MAX_PIXELS {
            return Err(Error::Size(format!(
                "{width}×{height} pixels: a frame may have at most {MAX_PIXELS} (7680×4320, 8K)"
            )));
        }
        Ok(())
    }

    fn targets(&mut self, width: u32, height: u32) -> &Targets {
        if self
            .targets
            .as_ref()
            .is_none_or(|t| t.size != (width, height))
        {
            let size = wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            };
            let texture = |label: &str, format, samples, usage| {
                self.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size,
                    mip_level_count: 1,
                    sample_count: samples,
                    dimension: wgpu::TextureDimension::D2,
                    format,
                    usage,
                    view_formats: &[],
                })
            };
            let resolve = texture(
                "frame",
                FORMAT,
                1,
                wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            );
            let msaa = (self.samples > 1).then(|| {
                texture(
                    "frame msaa",
                    FORMAT,
                    self.samples,
                    wgpu::TextureUsages::RENDER_ATTACHMENT,
                )
                .create_view(&wgpu::TextureViewDescriptor::default())
            });
            let depth = texture(
                "depth",
                DEPTH,
                self.samples,
                wgpu::TextureUsages::RENDER_ATTACHMENT,
            )
            .create_view(&wgpu::TextureViewDescriptor::default());
            let row = (width * 4).div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT)
                * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
            let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: u64::from(row) * u64::from(height),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let resolve_view = resolve.create_view(&wgpu::TextureViewDescriptor::default());
            self.targets = Some(Targets {
                size: (width, height),
                msaa,
                resolve,
                resolve_view,
                depth,
                readback,
                row,
            });
        }
        self.targets.as_ref().expect("targets were just made")
    }

    /// Draws a scene and reads the pixels back.
    pub fn draw(&mut self, mut scene: Scene) -> Result<Frame, Error> {
        let started = std::time::Instant::now();
        let (width, height) = (scene.width, scene.height);
        self.check_size(width, height)?;
        if scene.skipped > 0 {
            scene.warnings.push(format!(
                "{} features could not be tessellated and were left out",
                scene.skipped
            ));
        }
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);

        let vertices = (!scene.geometry.vertices.is_empty()).then(|| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("vertices"),
                    contents: bytemuck::cast_slice(&scene.geometry.vertices),
                    usage: wgpu::BufferUsages::VERTEX,
                })
        });
        let indices = (!scene.geometry.indices.is_empty()).then(|| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("indices"),
                    contents: bytemuck::cast_slice(&scene.geometry.indices),
                    usage: wgpu::BufferUsages::INDEX,
                })
        });
        let images: Vec<(wgpu::BindGroup, wgpu::Buffer)> = scene
            .images
            .iter()
            .map(|img| self.upload_image(img, (width as f32, height as f32)))
            .collect();

        // text: every label, with its halo as eight offset copies underneath
        self.viewport
            .update(&self.queue, glyphon::Resolution { width, height });
        let mut areas = Vec::new();
        for label in &scene.labels {
            let bounds = glyphon::TextBounds {
                left: label.clip[0] as i32,
                top: label.clip[1] as i32,
                right: (label.clip[0] + label.clip[2]) as i32,
                bottom: (label.clip[1] + label.clip[3]) as i32,
            };
            let area = |dx: f32, dy: f32, c: crate::Color| {
                let [r, g, b, a] = c.to_rgba8();
                glyphon::TextArea {
                    buffer: &label.buffer,
                    left: label.left + dx,
                    top: label.top + dy,
                    scale: 1.0,
                    bounds,
                    default_color: glyphon::Color::rgba(r, g, b, a),
                    custom_glyphs: &[],
                }
            };
            if let Some((halo, w)) = label.halo
                && w > 0.0
            {
                let d = w * std::f32::consts::FRAC_1_SQRT_2;
                for (dx, dy) in [
                    (-w, 0.0),
                    (w, 0.0),
                    (0.0, -w),
                    (0.0, w),
                    (-d, -d),
                    (d, -d),
                    (-d, d),
                    (d, d),
                ] {
                    areas.push(area(dx, dy, halo));
                }
            }
            areas.push(area(0.0, 0.0, label.color));
        }
        self.text
            .prepare(
                &self.device,
                &self.queue,
                &mut self.fonts.system,
                &mut self.atlas,
                &self.viewport,
                areas,
                &mut self.swash,
            )
            .map_err(|e| Error::Gpu(format!("text: {e}")))?;

        self.targets(width, height);
        let t = self.targets.as_ref().expect("targets exist");
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        {
            let c = scene.clear;
            let (view, resolve) = match &t.msaa {
                Some(msaa) => (msaa, Some(&t.resolve_view)),
                None => (&t.resolve_view, None),
            };
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("frame"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view,
                    depth_slice: None,
                    resolve_target: resolve,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color {
                            r: f64::from(c.r * c.a),
                            g: f64::from(c.g * c.a),
                            b: f64::from(c.b * c.a),
                            a: f64::from(c.a),
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &t.depth,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            for item in &scene.items {
                match item {
                    Item::Draw(d) => {
                        let (Some(v), Some(i)) = (&vertices, &indices) else {
                            continue;
                        };
                        if d.scissor[2] == 0 || d.scissor[3] == 0 {
                            continue;
                        }
                        pass.set_pipeline(match d.pipe {
                            Pipe::Flat => &self.flat,
                            Pipe::Depth => &self.depth,
                        });
                        pass.set_scissor_rect(
                            d.scissor[0],
                            d.scissor[1],
                            d.scissor[2],
                            d.scissor[3],
                        );
                        pass.set_vertex_buffer(0, v.slice(..));
                        pass.set_index_buffer(i.slice(..), wgpu::IndexFormat::Uint32);
                        pass.draw_indexed(d.indices.clone(), 0, 0..1);
                    }
                    Item::Image(n) => {
                        let s = scene.images[*n].scissor;
                        if s[2] == 0 || s[3] == 0 {
                            continue;
                        }
                        let (group, quad) = &images[*n];
                        pass.set_pipeline(&self.image);
                        pass.set_scissor_rect(s[0], s[1], s[2], s[3]);
                        pass.set_bind_group(0, group, &[]);
                        pass.set_vertex_buffer(0, quad.slice(..));
                        pass.draw(0..4, 0..1);
                    }
                }
            }
            pass.set_scissor_rect(0, 0, width, height);
            self.text
                .render(&self.atlas, &self.viewport, &mut pass)
                .map_err(|e| Error::Gpu(format!("text: {e}")))?;
        }
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &t.resolve,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &t.readback,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(t.row),
                    rows_per_image: Some(height),
                },
            },
            wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
        );
        self.queue.submit([encoder.finish()]);
        let slice = t.readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the frame: {e}")))?;
        if let Some(e) = pollster::block_on(memory.pop()) {
            return Err(Error::Gpu(format!("out of memory: {e}")));
        }
        if let Some(e) = pollster::block_on(validation.pop()) {
            return Err(Error::Gpu(e.to_string()));
        }
        rx.recv()
            .map_err(|_| Error::Gpu("the frame was never mapped".into()))?
            .map_err(|e| Error::Gpu(format!("reading the frame back: {e}")))?;
        let row = t.row as usize;
        let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
        {
            let data = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading the frame back: {e}")))?;
            for y in 0..height as usize {
                rgba.extend_from_slice(&data[y * row..y * row + width as usize * 4]);
            }
        }
        t.readback.unmap();
        unpremultiply(&mut rgba);
        self.atlas.trim();
        Ok(Frame {
            width,
            height,
            rgba,
            warnings: scene.warnings,
            prepare: std::time::Duration::ZERO,
            draw: started.elapsed(),
            credit: String::new(),
        })
    }

    fn upload_image(
        &self,
        img: &crate::scene::Image,
        frame: (f32, f32),
    ) -> (wgpu::BindGroup, wgpu::Buffer) {
        let size = wgpu::Extent3d {
            width: img.width.max(1),
            height: img.height.max(1),
            depth_or_array_layers: 1,
        };
        let texture = self.device.create_texture_with_data(
            &self.queue,
            &wgpu::TextureDescriptor {
                label: Some("image"),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: FORMAT,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            },
            wgpu::util::TextureDataOrder::LayerMajor,
            &img.rgba,
        );
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("image"),
            layout: &self.image_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
            ],
        });
        let [x, y, w, h] = img.dest;
        let c = |sx: f32, sy: f32| crate::camera::frame_clip(frame, sx, sy);
        let quad = [
            ImageVertex {
                pos: c(x, y),
                uv: [0.0, 0.0],
            },
            ImageVertex {
                pos: c(x, y + h),
                uv: [0.0, 1.0],
            },
            ImageVertex {
                pos: c(x + w, y),
                uv: [1.0, 0.0],
            },
            ImageVertex {
                pos: c(x + w, y + h),
                uv: [1.0, 1.0],
            },
        ];
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("image quad"),
                contents: bytemuck::cast_slice(&quad),
                usage: wgpu::BufferUsages::VERTEX,
            });
        (group, buffer)
    }
}

/// Premultiplied to straight alpha, in place (a no-op on opaque pixels).
fn unpremultiply(rgba: &mut [u8]) {
    for px in rgba.chunks_exact_mut(4) {
        let a = px[3];
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((u16::from(*c) * 255 + u16::from(a) / 2) / u16::from(a)).min(255) as u8;
            }
        }
    }
}
