//! Building an ONNX graph: constants, nodes with generated output names, and the typed inputs and outputs.

use super::proto::{
    attribute_type, data_type, dimension, AttributeProto, Dimension, GraphProto, NodeProto,
    TensorProto, TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};

/// Nodes in the order they are added (each reads only earlier values, so the order is topological) and the
/// constants they read.
#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn tensor(&mut self, name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.to_vec(),
            data_type,
            name: name.into(),
            raw_data,
        });
        name.into()
    }

    /// A float constant (little-endian, as ONNX's `raw_data` requires); returns its name.
    pub fn constant(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, data_type::FLOAT, raw)
    }

    pub fn constant_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, data_type::INT64, raw)
    }

    pub fn constant_bool(&mut self, name: &str, dims: &[i64], values: &[bool]) -> String {
        let raw = values.iter().map(|&v| u8::from(v)).collect();
        self.tensor(name, dims, data_type::BOOL, raw)
    }

    /// Adds `op` over `inputs`; returns the name of its one output (`op_type` and the node's number).
    pub fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = format!("{}_{}", op.to_lowercase(), self.nodes.len());
        self.node_named(op, inputs, &output, attribute);
        output
    }

    /// Adds `op` over `inputs` writing `output`.
    pub fn node_named(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
        });
    }

    /// Gives the value `from` the name `to` (a graph output's): the node that writes it writes `to`
    /// instead; a value no node writes (the input, a constant) is passed through an `Identity`.
    pub fn rename(&mut self, from: &str, to: &str) {
        match self
            .nodes
            .iter_mut()
            .find(|n| n.output.iter().any(|o| o == from))
        {
            Some(node) => {
                for output in node.output.iter_mut().filter(|o| *o == from) {
                    *output = to.into();
                }
            }
            None => self.node_named("Identity", &[from], to, Vec::new()),
        }
    }

    pub fn finish(
        self,
        name: &str,
        input: ValueInfoProto,
        output: Vec<ValueInfoProto>,
    ) -> GraphProto {
        GraphProto {
            node: self.nodes,
            name: name.into(),
            initializer: self.initializers,
            doc_string: String::new(),
            input: vec![input],
            output,
        }
    }
}

/// A tensor's name, element type and shape; `None` is the dynamic batch dimension `N`.
pub fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>], doc: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => dimension::Value::DimValue(*n),
                None => dimension::Value::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
        doc_string: doc.into(),
    }
}

pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(value),
        r#type: attribute_type::INT,
        ..AttributeProto::default()
    }
}

pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(value),
        r#type: attribute_type::FLOAT,
        ..AttributeProto::default()
    }
}

pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: values.to_vec(),
        r#type: attribute_type::INTS,
        ..AttributeProto::default()
    }
}
